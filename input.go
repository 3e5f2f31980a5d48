package main

// input.go: the fields of a request body, validated as Django REST
// framework validates them.
//
// text, optionalText, optionalBool and image read the fields of an *input
// (body.go) with DRF's rules and messages, collecting every problem in a
// fieldErrors, in the order the fields are checked.
//
// It knows fields and their messages, not what a handler does with them;
// the only store calls are the uniqueness checks of username and email.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/gif" // image.DecodeConfig recognises the three accepted formats
	_ "image/jpeg"
	_ "image/png"
	"net"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ---- validating fields ----

// Field messages, as Django and DRF word them.
const (
	msgRequired      = "This field is required."
	msgBlank         = "This field may not be blank."
	msgNull          = "This field may not be null."
	msgNotString     = "Not a valid string."
	msgNullChars     = "Null characters are not allowed."
	msgUnique        = "This field must be unique."
	msgUsernameTaken = "A user with that username already exists."
	msgBadUsername   = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."
	msgBadEmail      = "Enter a valid email address."
)

// fieldErrors collects validation messages by field, in the order the
// fields were checked (DRF's order), and is answered as a 400.
type fieldErrors struct {
	fields []string
	msgs   map[string][]string
}

func (e *fieldErrors) add(field string, msgs ...string) {
	if len(msgs) == 0 {
		return
	}
	if e.msgs == nil {
		e.msgs = map[string][]string{}
	}
	if _, seen := e.msgs[field]; !seen {
		e.fields = append(e.fields, field)
	}
	e.msgs[field] = append(e.msgs[field], msgs...)
}

func (e *fieldErrors) any() bool             { return len(e.fields) > 0 }
func (e *fieldErrors) has(field string) bool { return len(e.msgs[field]) > 0 }
func (e *fieldErrors) Error() string         { return "invalid fields: " + strings.Join(e.fields, ", ") }

// MarshalJSON writes {"field":["message",...],...} in the order of checking.
func (e *fieldErrors) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range e.fields {
		if i > 0 {
			b.WriteByte(',')
		}
		key, _ := marshalJSON(f)
		msgs, _ := marshalJSON(e.msgs[f])
		b.Write(key)
		b.WriteByte(':')
		b.Write(msgs)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// textRule says how to read a string field (DRF's CharField options).
type textRule struct {
	required   bool
	allowBlank bool
	raw        bool                  // keep surrounding white space (passwords are never trimmed)
	maxLen     int                   // in characters; 0 for no limit
	check      func(string) []string // the field's own validators, run first as in DRF
}

// text reads the string field name as DRF's CharField does, adding its
// problems to errs: required, not null, a string (a JSON number is taken as
// its text), not blank (after trimming), then the field's validators, at
// most maxLen characters and no NUL, all of whose messages are collected.
// It returns "" for a field that is absent or not a string.
func (in *input) text(errs *fieldErrors, name string, rule textRule) string {
	v, ok := in.values[name]
	_, isFile := in.files[name]
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case json.Number:
		s = v.String()
	default: // absent, null, a file where text belongs, or a value of another kind
		switch {
		case ok && v == nil:
			errs.add(name, msgNull)
		case ok || isFile:
			errs.add(name, msgNotString)
		case rule.required:
			errs.add(name, msgRequired)
		}
		return ""
	}
	if !rule.raw {
		s = strings.TrimSpace(s)
	}
	if s == "" {
		if !rule.allowBlank {
			errs.add(name, msgBlank)
		}
		return ""
	}
	var problems []string
	if rule.check != nil {
		problems = rule.check(s)
	}
	if rule.maxLen > 0 && utf8.RuneCountInString(s) > rule.maxLen {
		problems = append(problems, fmt.Sprintf("Ensure this field has no more than %d characters.", rule.maxLen))
	}
	if strings.ContainsRune(s, 0) {
		problems = append(problems, msgNullChars)
	}
	errs.add(name, problems...)
	return s
}

// optionalText reads a field of a partial update: nil when it is absent
// or wrong (its problems are in errs), else its value.
func (in *input) optionalText(errs *fieldErrors, name string, rule textRule) *string {
	if !in.has(name) {
		return nil
	}
	before := len(errs.msgs[name])
	value := in.text(errs, name, rule)
	if len(errs.msgs[name]) > before {
		return nil
	}
	return &value
}

const msgNotBool = "Must be a valid boolean."

// parseBool reads a boolean as the contract spells them: true/false, 1/0,
// or the strings true, false, 1, 0, on, off, yes, no in any case.
func parseBool(v any) (value, ok bool) {
	switch v := v.(type) {
	case bool:
		return v, true
	case json.Number:
		return v == "1", v == "1" || v == "0"
	case string:
		switch strings.ToLower(v) {
		case "true", "1", "on", "yes":
			return true, true
		case "false", "0", "off", "no":
			return false, true
		}
	}
	return false, false
}

// optionalBool reads a boolean field: nil when absent or wrong.
func (in *input) optionalBool(errs *fieldErrors, name string) *bool {
	v, present := in.values[name]
	if _, isFile := in.files[name]; !present && isFile {
		errs.add(name, msgNotBool)
		return nil
	}
	if !present {
		return nil
	}
	if v == nil {
		errs.add(name, msgNull)
		return nil
	}
	b, ok := parseBool(v)
	if !ok {
		errs.add(name, msgNotBool)
		return nil
	}
	return &b
}

// Upload limits of the contract.
const (
	maxImageBytes = 5 << 20
	maxImageSide  = 10000
)

const msgNotAnImage = "Upload a valid image. The file you uploaded was either not an image or a corrupted image."

// imageExtensions are the formats accepted, by image.DecodeConfig's name,
// with the extension they are stored under.
var imageExtensions = map[string]string{"png": "png", "jpeg": "jpg", "gif": "gif"}

// image reads an image field. A file part is checked by its content, never
// its name or declared type: PNG, JPEG or GIF, at most 5 MiB and 10000
// pixels a side. A value of null, "" or "null" asks for no image (remove is
// true). Absent, it returns nil, false.
func (in *input) image(errs *fieldErrors, name string) (img *imageFile, remove bool) {
	file, isFile := in.files[name]
	if !isFile {
		v, present := in.values[name]
		if present && v != nil && v != "" && v != "null" {
			errs.add(name, "The submitted data was not a file. Check the encoding type on the form.")
		}
		return nil, present && !errs.has(name)
	}
	switch {
	case len(file.data) == 0:
		errs.add(name, "The submitted file is empty.")
		return nil, false
	case len(file.data) > maxImageBytes:
		errs.add(name, "Ensure this file is no larger than 5 MiB.")
		return nil, false
	}
	config, format, err := image.DecodeConfig(bytes.NewReader(file.data))
	ext, known := imageExtensions[format]
	if err != nil || !known {
		errs.add(name, msgNotAnImage)
		return nil, false
	}
	if config.Width > maxImageSide || config.Height > maxImageSide || config.Width < 1 || config.Height < 1 {
		errs.add(name, fmt.Sprintf("Ensure the image is at most %d pixels on each side.", maxImageSide))
		return nil, false
	}
	if checkImageWhole(format, file.data) != nil {
		errs.add(name, msgNotAnImage)
		return nil, false
	}
	return &imageFile{data: file.data, ext: ext}, false
}

// msgLookalike refuses a username that Django would store normalized
// (NFKC): this server keeps names as they are written, so it asks for the
// plain form instead.
const msgLookalike = "Enter the username in plain characters: it holds one that stands for another " +
	"(such as ſ for s, ﬁ for fi, ｆ for f, ² for 2, or Ⅸ for IX)."

// lookalike reports whether s holds a character that Unicode's
// compatibility normalization (NFKC) changes or may combine with the one
// before it (nfkc_table.go, generated): ſam and sam, ｆｏｏ and foo, K
// (KELVIN SIGN) and K are one name to a person and two to a database.
func lookalike(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.Is(nfkcUnstable, r) }) >= 0
}

// usernamePattern is Django's UnicodeUsernameValidator: letters, digits
// and @.+-_ in any script.
var usernamePattern = regexp.MustCompile(`^[\p{L}\p{N}_.@+-]+$`)

// Length limits of usernames and emails. No stored one is longer, so a
// longer one is never looked up (it cannot be taken, or be anyone's).
const (
	maxUsernameLen = 150 // characters, Django's
	maxEmailLen    = 320 // bytes, Django's EmailValidator
)

// usernameRule is the username field: the pattern, then uniqueness (case-
// insensitively, ignoring the user being edited), then at most 150 characters.
func (s *server) usernameRule(ctx context.Context, required bool, exceptUserID int64) textRule {
	return textRule{required: required, maxLen: maxUsernameLen, check: func(username string) []string {
		var problems []string
		if !usernamePattern.MatchString(username) {
			problems = append(problems, msgBadUsername)
		} else if lookalike(username) {
			problems = append(problems, msgLookalike)
		}
		if utf8.RuneCountInString(username) <= maxUsernameLen && s.taken(ctx, s.store.usernameTaken, username, exceptUserID) {
			problems = append(problems, msgUsernameTaken)
		}
		return problems
	}}
}

// emailRule is the email field: unique (case-insensitively), then a valid
// address.
func (s *server) emailRule(ctx context.Context, required bool, exceptUserID int64) textRule {
	return textRule{required: required, check: func(email string) []string {
		var problems []string
		if len(email) <= maxEmailLen && s.taken(ctx, s.store.emailTaken, email, exceptUserID) {
			problems = append(problems, msgUnique)
		}
		if !validEmailAddress(email) {
			problems = append(problems, msgBadEmail)
		}
		return problems
	}}
}

// taken runs a uniqueness query for validation. A failed query counts as
// not taken: the UNIQUE constraint still refuses a duplicate when the row
// is written.
func (s *server) taken(ctx context.Context, query func(context.Context, string, int64) (bool, error), value string, exceptUserID int64) bool {
	taken, err := query(ctx, value, exceptUserID)
	return err == nil && taken
}

// Django's EmailValidator, part by part.
var (
	emailUserPattern = regexp.MustCompile("(?i)" +
		"^[-!#$%&'*+/=?^_`{}|~0-9A-Z]+(\\.[-!#$%&'*+/=?^_`{}|~0-9A-Z]+)*$" +
		`|^"([\x01-\x08\x0b\x0c\x0e-\x1f!#-\[\]-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*"$`)
	emailDomainPattern  = regexp.MustCompile(`(?i)^(?:[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?\.)+[A-Z0-9-]{2,63}$`)
	emailLiteralPattern = regexp.MustCompile(`(?i)^\[([A-F0-9:.]+)\]$`)
)

// validEmailAddress reports whether Django's EmailValidator accepts s.
//
// Beyond Django's, it refuses an address that holds a character of a
// compatibility form (lookalike): KELVIN SIGN for K, a full-width letter,
// which would reach one mailbox under two spellings.
func validEmailAddress(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at < 0 || len(s) > maxEmailLen || lookalike(s) {
		return false
	}
	local, domain := s[:at], s[at+1:]
	if !emailUserPattern.MatchString(local) {
		return false
	}
	if domain == "localhost" {
		return true
	}
	if m := emailLiteralPattern.FindStringSubmatch(domain); m != nil {
		return net.ParseIP(m[1]) != nil
	}
	// Django retries an international domain in its punycode form, which is
	// made only of letters, digits and hyphens: stand each non-ASCII letter
	// or digit in for one such character.
	ascii := strings.Map(func(r rune) rune {
		if r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return 'a'
		}
		return r
	}, domain)
	return emailDomainPattern.MatchString(ascii) && !strings.HasSuffix(ascii, "-")
}
