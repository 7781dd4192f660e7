package metrics

import (
	"errors"
	"reflect"
	"testing"
)

func TestFormatParseKey(t *testing.T) {
	tests := []struct {
		name   string
		metric string
		labels []Label
		key    string
	}{
		{"bare", "aimwan_link_drops_total", nil, "aimwan_link_drops_total"},
		{"one label", "aimwan_src_data_bytes", []Label{{"volume", "vm1"}}, `aimwan_src_data_bytes{volume="vm1"}`},
		{"sorted", "m", []Label{{"z", "1"}, {"a", "2"}}, `m{a="2",z="1"}`},
		{"escapes", "m", []Label{{"v", "a\"b\\c\nd"}}, `m{v="a\"b\\c\nd"}`},
		{"empty value", "m", []Label{{"v", ""}}, `m{v=""}`},
		{"brace and comma in value", "m", []Label{{"v", "},{"}}, `m{v="},{"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatKey(tt.metric, tt.labels); got != tt.key {
				t.Fatalf("FormatKey = %s, want %s", got, tt.key)
			}
			name, labels, err := ParseKey(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if name != tt.metric {
				t.Errorf("name %q", name)
			}
			if FormatKey(name, labels) != tt.key {
				t.Errorf("round trip gave %s", FormatKey(name, labels))
			}
		})
	}
}

func TestParseKeyErrors(t *testing.T) {
	for _, key := range []string{"", "1abc", "m{", "m{}x", `m{a="1"`, `m{a=1}`, `m{a="\x"}`, `m{="1"}`, "m x", `m{a="1"b="2"}`} {
		t.Run(key, func(t *testing.T) {
			if _, _, err := ParseKey(key); !errors.Is(err, ErrBadKey) {
				t.Fatalf("ParseKey(%q) err %v, want ErrBadKey", key, err)
			}
		})
	}
	// An empty label set is legal in the text format.
	if name, labels, err := ParseKey("m{}"); err != nil || name != "m" || labels != nil {
		t.Fatalf("m{}: %q %v %v", name, labels, err)
	}
}

func TestLabelValue(t *testing.T) {
	_, labels, _ := ParseKey(`m{direction="tx",volume="vm1"}`)
	if v, ok := LabelValue(labels, "volume"); !ok || v != "vm1" {
		t.Fatalf("volume = %q %v", v, ok)
	}
	if _, ok := LabelValue(labels, "nope"); ok {
		t.Fatal("found a missing label")
	}
	if !reflect.DeepEqual(labels, []Label{{"direction", "tx"}, {"volume", "vm1"}}) {
		t.Fatalf("labels %v", labels)
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"a", `m{v="x"}`, `m{a="1",b="\"\\\n"}`, "m{}", `m{a="}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		name, labels, err := ParseKey(key)
		if err != nil {
			return
		}
		again := FormatKey(name, labels)
		n2, l2, err := ParseKey(again)
		if err != nil || n2 != name || FormatKey(n2, l2) != again {
			t.Fatalf("%q -> %q does not round trip: %v", key, again, err)
		}
	})
}
