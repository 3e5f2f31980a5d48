package main

// strictjson.go: reading a JSON object strictly, for token headers and
// payloads.
//
// A token's JSON is written by whoever holds the key, so it is read with no
// leeway at all: valid UTF-8, exactly one object, each member name once and
// matched exactly by the caller. encoding/json alone is more forgiving: it
// turns invalid UTF-8 into U+FFFD, and of a name written twice the last
// wins. So readObject refuses invalid UTF-8 first, lets json.Unmarshal read
// the object into a map (names exact, each value as written), and refuses
// it if the map holds fewer members than the text writes.
//
// It knows JSON's grammar, not what the members mean.

import (
	"encoding/json"
	"unicode/utf8"
)

// readObject reads a JSON object strictly and returns its members, each
// value as it was written: the text must be valid UTF-8 with nothing after
// the object, and each name must come once.
func readObject(data []byte) (map[string]json.RawMessage, bool) {
	var members map[string]json.RawMessage
	if !utf8.Valid(data) || json.Unmarshal(data, &members) != nil || members == nil {
		return nil, false
	}
	return members, len(members) == membersWritten(data)
}

// membersWritten counts the members of a valid JSON object as they are
// written, a name that comes twice counting twice: the commas outside
// strings and nested values, plus one, or none for {}.
func membersWritten(object []byte) int {
	commas, depth, inString, empty := 0, 0, false, true
	for i := 0; i < len(object); i++ {
		switch c := object[i]; {
		case inString && c == '\\':
			i++ // an escaped character, perhaps a quote
		case c == '"':
			inString, empty = !inString, empty && depth != 1
		case inString:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ',' && depth == 1:
			commas++
		}
	}
	if empty {
		return 0
	}
	return commas + 1
}
