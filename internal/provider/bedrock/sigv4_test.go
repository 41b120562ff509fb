package bedrock

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/logging"
)

// signLog keeps what the signer logs: the canonical request and the
// string to sign.
type signLog struct{ msg string }

func (l *signLog) Logf(_ logging.Classification, format string, v ...any) {
	l.msg = fmt.Sprintf(format, v...)
}

// TestSignerMatchesAWSTestVectors signs the requests of AWS's published
// SigV4 test suite (testdata/sigv4, see its README) through the adapter's
// own signing step, with the suite's credentials, region, service and
// time, and compares the Authorization header (and, where the suite gives
// them, the canonical request and string to sign) with the suite's.
func TestSignerMatchesAWSTestVectors(t *testing.T) {
	for _, name := range []string{"get-vanilla", "post-vanilla"} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile("testdata/sigv4/" + name + ".req")
			if err != nil {
				t.Fatal(err)
			}
			wire := strings.ReplaceAll(strings.TrimRight(string(raw), "\n"), "\n", "\r\n") + "\r\n\r\n"
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(wire)))
			if err != nil {
				t.Fatal(err)
			}
			r = r.WithContext(context.Background())
			r.RequestURI = ""
			r.URL.Scheme, r.URL.Host = "https", r.Host

			p, err := New(context.Background(), Config{Region: "us-east-1", AccessKeyID: "AKIDEXAMPLE",
				SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"})
			if err != nil {
				t.Fatal(err)
			}
			log := &signLog{}
			p.signer = v4.NewSigner(func(o *v4.SignerOptions) { o.LogSigning, o.Logger = true, log })
			p.service = "service"
			p.now = func() time.Time { return time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC) }
			if _, err := p.sign(context.Background(), r, nil); err != nil {
				t.Fatal(err)
			}

			want, err := os.ReadFile("testdata/sigv4/" + name + ".authz")
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Header.Get("Authorization"); got != string(want) {
				t.Errorf("Authorization\n got %s\nwant %s", got, want)
			}
			for _, part := range []string{".creq", ".sts"} {
				want, err := os.ReadFile("testdata/sigv4/" + name + part)
				if os.IsNotExist(err) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(log.msg, "\n"+string(want)+"\n") {
					t.Errorf("%s %s not in what the signer computed:\n%s", name, part, log.msg)
				}
			}
		})
	}
}
