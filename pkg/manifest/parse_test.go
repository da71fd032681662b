package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/hapod/hapod/pkg/config"
)

// TestParseGolden: each golden manifest parses back to the Config and the
// image it was rendered from.
func TestParseGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(goldenDir, tc.name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			got, image, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if want := cfg(t, tc.mutate); !reflect.DeepEqual(got, want) {
				t.Errorf("Parse gave\n %+v\nwant\n %+v", got, want)
			}
			if image != goldenImage {
				t.Errorf("image %q, want %q", image, goldenImage)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		data string
		want error
	}{
		"not yaml":         {"{", nil},
		"another pod":      {"apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: x\n    args: [serve]\n", ErrNotHapod},
		"no containers":    {"apiVersion: v1\nkind: Pod\n", ErrNotHapod},
		"an unknown flag":  {"spec:\n  containers:\n  - name: hapod\n    args: [run, --vip=198.18.0.10/24, --no-such-flag=1]\n", config.ErrUnknownFlag},
		"not --name=value": {"spec:\n  containers:\n  - name: hapod\n    args: [run, --vip, 198.18.0.10/24]\n", nil},
		"a bad value":      {"spec:\n  containers:\n  - name: hapod\n    args: [run, --vip=198.18.0.300/24]\n", nil},
	} {
		_, _, err := Parse([]byte(tc.data))
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: Parse = %v, want an error (%v)", name, err, tc.want)
		}
	}
}

// FuzzParseRender sets one flag of a golden case's Config to a fuzzed
// value (a list flag to two) and, when the result is still valid, checks
// that the manifest Render makes of it parses back to the same Config.
func FuzzParseRender(f *testing.F) {
	for i, fl := range config.Fields() {
		for _, tc := range goldenCases {
			c := cfg(f, tc.mutate)
			vs := append(fl.Values(&c), "", "")
			f.Add(uint8(i), vs[0], vs[1], uint8(0))
		}
	}
	f.Add(uint8(0), "198.18.0.10", "", uint8(0))
	f.Fuzz(func(t *testing.T, i uint8, v1, v2 string, golden uint8) {
		fields := config.Fields()
		fl := fields[int(i)%len(fields)]
		c := cfg(t, goldenCases[int(golden)%len(goldenCases)].mutate)
		values := []string{v1}
		if fl.Kind == config.KindList {
			values = append(values, v2)
		}
		if fl.Apply(&c, values) != nil {
			return
		}
		c.Complete()
		if c.Validate() != nil {
			return
		}
		data, err := Render(c, testImage, "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		got, image, err := Parse(data)
		if err != nil {
			t.Fatalf("--%s %q: Render's output does not parse: %v\n%s", fl.Name, values, err, data)
		}
		if !reflect.DeepEqual(got, c) || image != testImage {
			t.Fatalf("--%s %q: the round trip changed the config\n got: %+v\nwant: %+v", fl.Name, values, got, c)
		}
	})
}
