// Package chatreq reads the parts of an OpenAI chat request that the
// translating adapters (anthropic, bedrock, gemini) map to their providers'
// formats, each in a single pass over gjson results that point into the
// request (nothing is copied).
package chatreq

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Message holds the fields of one chat message.
type Message struct {
	Role, Content, ToolCalls, ToolCallID gjson.Result
}

// ParseMessage reads m's fields in one pass.
func ParseMessage(m gjson.Result) (f Message) {
	m.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "role":
			f.Role = v
		case "content":
			f.Content = v
		case "tool_calls":
			f.ToolCalls = v
		case "tool_call_id":
			f.ToolCallID = v
		}
		return true
	})
	return f
}

// Part holds the fields of one content part.
type Part struct {
	Type, Text, Refusal, ImageURL, InputAudio, CacheControl gjson.Result
}

// ParsePart reads p's fields in one pass.
func ParsePart(p gjson.Result) (f Part) {
	p.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "type":
			f.Type = v
		case "text":
			f.Text = v
		case "refusal":
			f.Refusal = v
		case "image_url":
			f.ImageURL = v
		case "input_audio":
			f.InputAudio = v
		case "cache_control":
			f.CacheControl = v
		}
		return true
	})
	return f
}

// MsgParam names message i, for an error's param.
func MsgParam(i int) string { return "messages[" + strconv.Itoa(i) + "]" }

// ContentParam names part j of message i.
func ContentParam(i, j int) string { return MsgParam(i) + ".content[" + strconv.Itoa(j) + "]" }

// AppendCompact appends valid JSON without insignificant whitespace.
func AppendCompact(dst []byte, raw string) []byte {
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, unsafe.Slice(unsafe.StringData(raw), len(raw))); err != nil {
		// Callers validate first; keep the bytes rather than lose them.
		return append(dst, raw...)
	}
	return buf.Bytes()
}
