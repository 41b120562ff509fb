package api

import (
	"encoding/json"
	"fmt"
)

// StreamChunks turns a complete chat.completion JSON into the chunk
// payloads of an equivalent stream: per choice a role chunk, one content
// chunk, one tool-call chunk and a finish chunk; then a usage chunk when
// includeUsage is set. Replays use large chunks and no delays: the answer
// is already complete.
func StreamChunks(completion []byte, includeUsage bool) ([][]byte, error) {
	var cc ChatCompletion
	if err := json.Unmarshal(completion, &cc); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	base := ChatCompletionChunk{ID: cc.ID, Object: "chat.completion.chunk", Created: cc.Created, Model: cc.Model,
		SystemFingerprint: cc.SystemFingerprint}
	var out [][]byte
	emit := func(choices []ChunkChoice, usage *Usage) error {
		c := base
		c.Choices = choices
		c.Usage = usage
		b, err := json.Marshal(&c)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		out = append(out, b)
		return nil
	}
	for _, ch := range cc.Choices {
		m := ch.Message
		role := m.Role
		if role == "" {
			role = "assistant"
		}
		if err := emit([]ChunkChoice{{Index: ch.Index, Delta: Delta{Role: role, Content: Ptr("")}}}, nil); err != nil {
			return nil, err
		}
		if m.Content != nil && *m.Content != "" {
			if err := emit([]ChunkChoice{{Index: ch.Index, Delta: Delta{Content: m.Content}}}, nil); err != nil {
				return nil, err
			}
		}
		if m.Refusal != nil && *m.Refusal != "" {
			if err := emit([]ChunkChoice{{Index: ch.Index, Delta: Delta{Refusal: m.Refusal}}}, nil); err != nil {
				return nil, err
			}
		}
		if len(m.ToolCalls) > 0 {
			tcs := make([]ToolCall, len(m.ToolCalls))
			for i, tc := range m.ToolCalls {
				tc.Index = Ptr(i)
				tcs[i] = tc
			}
			if err := emit([]ChunkChoice{{Index: ch.Index, Delta: Delta{ToolCalls: tcs}}}, nil); err != nil {
				return nil, err
			}
		}
		if err := emit([]ChunkChoice{{Index: ch.Index, Delta: Delta{}, FinishReason: Ptr(ch.FinishReason)}}, nil); err != nil {
			return nil, err
		}
	}
	if includeUsage && cc.Usage != nil {
		if err := emit([]ChunkChoice{}, cc.Usage); err != nil {
			return nil, err
		}
	}
	return out, nil
}
