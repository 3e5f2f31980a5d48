package main

// strictjson.go: reading a JSON object strictly, for token headers and
// payloads.
//
// A token's JSON is written by whoever holds the key, so it is read with no
// leeway at all: valid UTF-8, exactly one object, each member name once and
// matched exactly by the caller. encoding/json is more forgiving (it
// matches names without regard to case, lets a later duplicate win, and
// turns invalid UTF-8 into U+FFFD), so this reads the text by hand, in one
// pass, without decoding the values. FuzzReadObject holds its verdict to
// encoding/json's on the same text.
//
// It knows JSON's grammar, not what the members mean.

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// readObject reads a JSON object strictly and returns its members, each
// value as it was written: the text must be valid UTF-8 with nothing after
// the object, and each name must come once. Names are matched exactly by
// the caller. (encoding/json alone would match "Exp" to exp, take the last
// of two "token_type" members, and turn invalid UTF-8 into U+FFFD.) It is
// read by hand, in one pass, without decoding the values: they are what
// readPayload looks at, and a test holds its verdict to encoding/json's.
func readObject(data []byte) (map[string]json.RawMessage, bool) {
	if !utf8.Valid(data) {
		return nil, false
	}
	r := &jsonReader{data: data}
	if !r.next('{') {
		return nil, false
	}
	members := make(map[string]json.RawMessage, 9)
	for first := true; !r.next('}'); first = false {
		if !first && !r.next(',') {
			return nil, false
		}
		r.space()
		start := r.i
		if !r.skipString() {
			return nil, false
		}
		name := jsonString(data[start:r.i])
		if _, seen := members[name]; seen || !r.next(':') {
			return nil, false
		}
		r.space()
		start = r.i
		if !r.skipValue(0) {
			return nil, false
		}
		members[name] = data[start:r.i]
	}
	r.space()
	return members, r.i == len(data)
}

// jsonReader walks JSON text, checking its grammar (RFC 8259) as it goes.
type jsonReader struct {
	data []byte
	i    int
}

func (r *jsonReader) space() {
	for r.i < len(r.data) && (r.data[r.i] == ' ' || r.data[r.i] == '\t' || r.data[r.i] == '\n' || r.data[r.i] == '\r') {
		r.i++
	}
}

// next skips white space and then c, if c is what comes.
func (r *jsonReader) next(c byte) bool {
	r.space()
	if r.i < len(r.data) && r.data[r.i] == c {
		r.i++
		return true
	}
	return false
}

func (r *jsonReader) literal(s string) bool {
	if !bytes.HasPrefix(r.data[r.i:], []byte(s)) {
		return false
	}
	r.i += len(s)
	return true
}

func (r *jsonReader) skipString() bool {
	if r.i >= len(r.data) || r.data[r.i] != '"' {
		return false
	}
	for r.i++; r.i < len(r.data); r.i++ {
		switch c := r.data[r.i]; {
		case c == '"':
			r.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			r.i++
			if r.i >= len(r.data) {
				return false
			}
			switch r.data[r.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if r.i+4 >= len(r.data) {
					return false
				}
				for _, h := range r.data[r.i+1 : r.i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				r.i += 4
			default:
				return false
			}
		}
	}
	return false
}

func (r *jsonReader) digits() bool {
	start := r.i
	for r.i < len(r.data) && '0' <= r.data[r.i] && r.data[r.i] <= '9' {
		r.i++
	}
	return r.i > start
}

func (r *jsonReader) skipNumber() bool {
	if r.i < len(r.data) && r.data[r.i] == '-' {
		r.i++
	}
	if r.i < len(r.data) && r.data[r.i] == '0' {
		r.i++
	} else if !r.digits() {
		return false
	}
	if r.i < len(r.data) && r.data[r.i] == '.' {
		r.i++
		if !r.digits() {
			return false
		}
	}
	if r.i < len(r.data) && (r.data[r.i] == 'e' || r.data[r.i] == 'E') {
		r.i++
		if r.i < len(r.data) && (r.data[r.i] == '+' || r.data[r.i] == '-') {
			r.i++
		}
		if !r.digits() {
			return false
		}
	}
	return true
}

// skipValue skips one value; depth bounds how deep arrays and objects nest.
func (r *jsonReader) skipValue(depth int) bool {
	if r.i >= len(r.data) || depth > 32 {
		return false
	}
	switch c := r.data[r.i]; {
	case c == '"':
		return r.skipString()
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return r.skipNumber()
	case c == '[' || c == '{':
		end := map[byte]byte{'[': ']', '{': '}'}[c]
		r.i++
		for first := true; !r.next(end); first = false {
			if !first && !r.next(',') {
				return false
			}
			r.space()
			if c == '{' {
				if !r.skipString() || !r.next(':') {
					return false
				}
				r.space()
			}
			if !r.skipValue(depth + 1) {
				return false
			}
		}
		return true
	}
	return false
}
