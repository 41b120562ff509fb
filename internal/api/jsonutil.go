package api

import (
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string literal. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = AppendEscaped(dst, s)
	return append(dst, '"')
}

// AppendEscaped appends the inside of a JSON string literal for s: quotes,
// backslashes and control characters escaped, invalid UTF-8 as U+FFFD,
// U+2028/U+2029 escaped. HTML characters are left alone, as slog and
// OpenAI's API do.
func AppendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// AppendFloat appends f with exactly prec decimals.
func AppendFloat(dst []byte, f float64, prec int) []byte {
	return strconv.AppendFloat(dst, f, 'f', prec, 64)
}

// AppendMillis appends d in milliseconds with exactly three decimals,
// rounded to the nearest microsecond (halves up): what AppendFloat(dst,
// float64(d)/1e6, 3) writes, in integer arithmetic, a few times faster.
// Durations within 500 ns of the int64 limits (292 years) are out of its
// range.
func AppendMillis(dst []byte, d time.Duration) []byte {
	if d < 0 {
		dst = append(dst, '-')
		d = -d
	}
	us := (d + 500) / time.Microsecond
	dst = strconv.AppendInt(dst, int64(us/1000), 10)
	frac := us % 1000
	return append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// AppendUsage appends a chat completion's usage object: prompt and
// completion tokens, their total, the prompt's cached tokens and, when
// reasoning >= 0, completion_tokens_details with the reasoning tokens.
func AppendUsage(dst []byte, prompt, completion, cached, reasoning int64) []byte {
	dst = append(dst, `{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, prompt, 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendInt(dst, completion, 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, prompt+completion, 10)
	dst = append(dst, `,"prompt_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendInt(dst, cached, 10)
	if reasoning >= 0 {
		dst = append(dst, `},"completion_tokens_details":{"reasoning_tokens":`...)
		dst = strconv.AppendInt(dst, reasoning, 10)
	}
	return append(dst, "}}"...)
}

// View is b as a string without a copy, for reading it (gjson) in place:
// valid only while b is not modified, so a string taken from it that is
// kept must be copied (strings.Clone, or appended).
func View(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
