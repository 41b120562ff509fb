// Command jsonget prints fields of a JSON document for the shell scripts,
// so they need neither jq nor Python:
//
//	jsonget FILE PATH...   one value per line (gjson path syntax; "-" reads stdin)
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/tidwall/gjson"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: jsonget FILE|- PATH...")
		os.Exit(2)
	}
	var data []byte
	var err error
	if os.Args[1] == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "jsonget:", err)
		os.Exit(1)
	}
	if !gjson.ValidBytes(data) {
		fmt.Fprintln(os.Stderr, "jsonget: input is not JSON")
		os.Exit(1)
	}
	for _, p := range os.Args[2:] {
		r := gjson.GetBytes(data, p)
		if !r.Exists() {
			fmt.Fprintf(os.Stderr, "jsonget: %s: not found\n", p)
			os.Exit(1)
		}
		fmt.Println(r.String())
	}
}
