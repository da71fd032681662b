package config

import (
	"reflect"
	"testing"
)

// FuzzArgsRoundTrip sets one flag of a valid Config to a fuzzed value (a
// list flag to two) and, when the result is still valid, checks that the
// `hapod run` arguments rendered from it parse back to the same Config:
// the manifest carries nothing else.
func FuzzArgsRoundTrip(f *testing.F) {
	for i, fl := range Fields() {
		d := full()
		vs := fl.Values(&d)
		vs = append(vs, "", "")
		f.Add(uint8(i), vs[0], vs[1])
	}
	f.Add(uint8(0), "2001:db8::10/64", "")
	f.Add(uint8(0), "198.18.0.10", "")
	f.Fuzz(func(t *testing.T, i uint8, v1, v2 string) {
		fields := Fields()
		fl := fields[int(i)%len(fields)]
		c := full()
		values := []string{v1}
		if fl.Kind == KindList {
			values = append(values, v2)
		}
		if err := fl.Apply(&c, values); err != nil {
			return
		}
		if c.Validate() != nil {
			return
		}
		got, err := ParseArgs(c.Args())
		if err != nil {
			t.Fatalf("--%s %q accepted, but its rendering %q is refused: %v", fl.Name, values, c.Args(), err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("--%s %q: the round trip changed the config\n got: %+v\nwant: %+v\nargs: %q", fl.Name, values, got, c, c.Args())
		}
	})
}
