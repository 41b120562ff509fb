package sse

// AppendData appends the event "data: payload\n\n" to dst.
func AppendData(dst, payload []byte) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, payload...)
	return append(dst, '\n', '\n')
}

// AppendEvent appends the event "event: name\ndata: payload\n\n" to dst.
func AppendEvent(dst []byte, name string, payload []byte) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, payload...)
	return append(dst, '\n', '\n')
}
