package main

// strictjson.go: reading a JSON object strictly, for token headers and
// payloads.
//
// A token's JSON is written by whoever holds the key, so it is read with no
// leeway at all: valid UTF-8, exactly one object, each member name once and
// matched exactly by the caller. encoding/json alone is more forgiving (it
// matches struct fields without regard to case, lets a later duplicate win,
// and turns invalid UTF-8 into U+FFFD), so readObject walks the object's
// members with encoding/json's tokenizer and keeps each value as written.
//
// It knows JSON's grammar, not what the members mean.

import (
	"bytes"
	"encoding/json"
	"io"
	"unicode/utf8"
)

// readObject reads a JSON object strictly and returns its members, each
// value as it was written: the text must be valid UTF-8 with nothing after
// the object, and each name must come once.
func readObject(data []byte) (map[string]json.RawMessage, bool) {
	if !utf8.Valid(data) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if open, err := dec.Token(); err != nil || open != json.Delim('{') {
		return nil, false
	}
	members := make(map[string]json.RawMessage, 9)
	for dec.More() {
		token, err := dec.Token()
		name, isName := token.(string)
		if _, seen := members[name]; err != nil || !isName || seen {
			return nil, false
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, false
		}
		members[name] = value
	}
	if end, err := dec.Token(); err != nil || end != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF { // nothing after the object
		return nil, false
	}
	return members, true
}
