package simulated

import (
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"
)

func TestCompletionsJSONAnswersEachPromptNTimes(t *testing.T) {
	s, ts := start(t, Options{})
	root := mustJSON(t, post(t, ts, "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":["say hi","say bye"],"n":2,"max_tokens":50}`), 200)
	if root.Get("object").Str != "text_completion" || !strings.HasPrefix(root.Get("id").Str, "cmpl-sim-") || root.Get("model").Str != "gpt-3.5-turbo-instruct" {
		t.Errorf("answer %s", root.Raw)
	}
	ch := root.Get("choices").Array()
	if len(ch) != 4 {
		t.Fatalf("%d choices, want 4", len(ch))
	}
	for i, c := range ch {
		if c.Get("index").Int() != int64(i) || c.Get("finish_reason").Str != "stop" || c.Get("logprobs").Type != gjson.Null {
			t.Errorf("choice %d: %s", i, c.Raw)
		}
	}
	if !strings.HasPrefix(ch[0].Get("text").Str, "Simulated answer to: say hi") || !strings.HasPrefix(ch[2].Get("text").Str, "Simulated answer to: say bye") {
		t.Errorf("texts %q %q", ch[0].Get("text").Str, ch[2].Get("text").Str)
	}
	if u := root.Get("usage"); u.Get("completion_tokens").Int() != 4*DefaultWords || u.Get("total_tokens").Int() != u.Get("prompt_tokens").Int()+u.Get("completion_tokens").Int() {
		t.Errorf("usage %s", u.Raw)
	}
	if s.Calls() != 1 {
		t.Errorf("Calls %d, want 1", s.Calls())
	}
}

func TestCompletionsDefaultToSixteenTokens(t *testing.T) {
	_, ts := start(t, Options{})
	c := mustJSON(t, post(t, ts, "/v1/completions", `{"model":"m","prompt":"go on"}`), 200).Get("choices.0")
	if words(c.Get("text").Str) != 16 || c.Get("finish_reason").Str != "length" {
		t.Errorf("choice %s, want 16 words cut by length", c.Raw)
	}
}

func TestCompletionsStreamTextChunksThenUsageThenDone(t *testing.T) {
	_, ts := start(t, Options{})
	body := `{"model":"m","prompt":"stream this","max_tokens":100,"stream":true,"stream_options":{"include_usage":true}}`
	evs := mustEvents(t, post(t, ts, "/v1/completions", body))
	want := mustJSON(t, post(t, ts, "/v1/completions", strings.Replace(body, `"stream":true`, `"stream":false`, 1)), 200)
	if evs[len(evs)-1].data != "[DONE]" {
		t.Fatalf("last event %q", evs[len(evs)-1].data)
	}
	var text strings.Builder
	var finish string
	for _, ev := range evs[:len(evs)-2] {
		c := gjson.Get(ev.data, "choices.0")
		if gjson.Get(ev.data, "object").Str != "text_completion" || c.Get("index").Int() != 0 {
			t.Fatalf("chunk %s", ev.data)
		}
		text.WriteString(c.Get("text").Str)
		if f := c.Get("finish_reason"); f.Type != gjson.Null {
			finish = f.Str
		}
	}
	if text.String() != want.Get("choices.0.text").Str || finish != "stop" {
		t.Errorf("streamed %q (%s), JSON %q", text.String(), finish, want.Get("choices.0.text").Str)
	}
	usage := evs[len(evs)-2].data
	if gjson.Get(usage, "choices.#").Int() != 0 || gjson.Get(usage, "usage").Raw != want.Get("usage").Raw {
		t.Errorf("usage chunk %s, want usage %s", usage, want.Get("usage").Raw)
	}
}

func TestOfficialOpenAISDKReadsTheCompletions(t *testing.T) {
	_, ts := start(t, Options{})
	client := openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey("x"), option.WithHTTPClient(ts.Client()), option.WithMaxRetries(0))
	params := openai.CompletionNewParams{
		Model:     openai.CompletionNewParamsModelGPT3_5TurboInstruct,
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("hello")},
		MaxTokens: openai.Int(30),
	}
	c, err := client.Completions.New(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Choices) != 1 || !strings.HasPrefix(c.Choices[0].Text, "Simulated answer to: hello") || c.Choices[0].FinishReason != "stop" {
		t.Fatalf("completion %+v", c)
	}
	stream := client.Completions.NewStreaming(t.Context(), params)
	var text strings.Builder
	for stream.Next() {
		for _, ch := range stream.Current().Choices {
			text.WriteString(ch.Text)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != c.Choices[0].Text {
		t.Errorf("streamed %q, JSON %q", text.String(), c.Choices[0].Text)
	}
}
