// Package golden runs translation tests whose expected outputs are files
// beside their inputs under testdata, rewritten with `go test -update`.
package golden

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update is registered once per test binary that imports this package.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Updating reports whether this run rewrites the golden files.
func Updating() bool { return *update }

// Run translates each file matching pattern (a glob whose last "*" is
// followed by the input suffix, e.g. "testdata/request/*.openai.json")
// and compares the output with STEM+suffix, the suffix being what
// translate returns. outputs lists every suffix a translation may
// produce: a golden file left over under another suffix is an error (or
// is removed with -update), so one input never has two expected answers.
func Run(t *testing.T, pattern string, outputs []string, translate func(t *testing.T, in []byte) (suffix string, got []byte)) {
	t.Helper()
	inputs, err := filepath.Glob(pattern)
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs match %s (err %v)", pattern, err)
	}
	inSuffix := pattern[strings.LastIndex(pattern, "*")+1:]
	for _, in := range inputs {
		stem := strings.TrimSuffix(in, inSuffix)
		t.Run(filepath.Base(stem), func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			suffix, got := translate(t, body)
			Compare(t, stem+suffix, got)
			for _, other := range outputs {
				p := stem + other
				if other == suffix || p == in {
					continue
				}
				if _, err := os.Stat(p); err == nil {
					if *update {
						_ = os.Remove(p)
					} else {
						t.Errorf("%s exists but the translation produced %s", p, suffix)
					}
				}
			}
		})
	}
}

// Compare checks got against the file at path, or writes it with -update.
func Compare(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s missing (run go test -update): %v\ngot:\n%s", path, err, got)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// Indent formats a JSON translation for a golden file, failing the test
// when it is not JSON.
func Indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatalf("translation is not valid JSON: %v\n%s", err, b)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}
