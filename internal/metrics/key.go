package metrics

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrBadKey is wrapped by every error ParseKey returns.
var ErrBadKey = errors.New("bad metric key")

// Label is one name="value" pair of a key.
type Label struct{ Name, Value string }

// FormatKey writes a series key the way the Prometheus text format writes a
// series: name{a="x",b="y"}, labels sorted by name, values escaped (\\, \",
// \n). A series without labels is just its name.
func FormatKey(name string, labels []Label) string {
	if len(labels) == 0 {
		return name
	}
	ls := append([]Label(nil), labels...)
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Name)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(l.Value))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// ParseKey splits a key written by FormatKey into its metric name and labels
// (in the order written).
func ParseKey(key string) (name string, labels []Label, err error) {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		if err := checkName(key); err != nil {
			return "", nil, fmt.Errorf("%w %q: %w", ErrBadKey, key, err)
		}
		return key, nil, nil
	}
	name = key[:i]
	if err := checkName(name); err != nil {
		return "", nil, fmt.Errorf("%w %q: %w", ErrBadKey, key, err)
	}
	labels, err = parseLabels(key[i+1:])
	if err != nil {
		return "", nil, fmt.Errorf("%w %q: %w", ErrBadKey, key, err)
	}
	return name, labels, nil
}

// parseLabels parses `a="x",b="y"}` (the text after the opening brace).
func parseLabels(s string) ([]Label, error) {
	var labels []Label
	for {
		if s == "}" {
			return labels, nil
		}
		eq := strings.Index(s, `="`)
		if eq < 0 {
			return nil, errors.New(`expected name="value"`)
		}
		ln := s[:eq]
		if err := checkName(ln); err != nil {
			return nil, fmt.Errorf("label: %w", err)
		}
		val, rest, err := unquoteLabel(s[eq+2:])
		if err != nil {
			return nil, fmt.Errorf("label %s: %w", ln, err)
		}
		labels = append(labels, Label{Name: ln, Value: val})
		switch {
		case rest == "}":
			return labels, nil
		case strings.HasPrefix(rest, ","):
			s = rest[1:]
		default:
			return nil, errors.New("expected , or } after a label")
		}
	}
}

// unquoteLabel reads an escaped value up to its closing quote and returns the
// value and what follows the quote.
func unquoteLabel(s string) (val, rest string, err error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i+1 >= len(s) {
				return "", "", errors.New("unfinished escape")
			}
			i++
			switch s[i] {
			case '\\':
				b.WriteByte('\\')
			case '"':
				b.WriteByte('"')
			case 'n':
				b.WriteByte('\n')
			default:
				return "", "", fmt.Errorf("unknown escape \\%c", s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated value")
}

// checkName accepts Prometheus metric and label names: [a-zA-Z_:][a-zA-Z0-9_:]*.
func checkName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return fmt.Errorf("name %q: bad character %q at %d", s, c, i)
		}
	}
	return nil
}

// LabelValue returns the value of label n in labels, and whether it is there.
func LabelValue(labels []Label, n string) (string, bool) {
	for _, l := range labels {
		if l.Name == n {
			return l.Value, true
		}
	}
	return "", false
}
