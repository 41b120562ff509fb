package cost

import "testing"

// The common models of the OpenAI-compatible presets are priced under the
// ids their APIs take, prefixes and snapshots included.
func TestPresetModelsArePricedUnderTheirAPIIDs(t *testing.T) {
	table := Default()
	for id, want := range map[string]Price{
		"mistral-large-latest":                              {InputPerM: 2, OutputPerM: 6},
		"mistral-large-2411":                                {InputPerM: 2, OutputPerM: 6},
		"llama-3.3-70b-versatile":                           {InputPerM: 0.59, OutputPerM: 0.79},
		"deepseek-chat":                                     {InputPerM: 0.28, CachedInputPerM: 0.028, OutputPerM: 0.42},
		"meta-llama/Llama-3.3-70B-Instruct-Turbo":           {InputPerM: 0.88, OutputPerM: 0.88},
		"accounts/fireworks/models/llama-v3p3-70b-instruct": {InputPerM: 0.9, OutputPerM: 0.9},
		"grok-4-0709":                                       {InputPerM: 3, CachedInputPerM: 0.75, OutputPerM: 15},
		"sonar-pro":                                         {InputPerM: 3, OutputPerM: 15},
		"llama-3.3-70b":                                     {InputPerM: 0.85, OutputPerM: 1.2},
		"openai/gpt-4o":                                     {InputPerM: 2.5, CachedInputPerM: 1.25, OutputPerM: 10},
	} {
		_, got, ok := table.Lookup(id)
		if !ok {
			t.Errorf("%s has no price", id)
			continue
		}
		if got.InputPerM != want.InputPerM || got.OutputPerM != want.OutputPerM || got.CachedInputPerM != want.CachedInputPerM {
			t.Errorf("%s priced %+v, want %+v", id, got, want)
		}
	}
}
