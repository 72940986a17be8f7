package hello

import "testing"

// FuzzConfigFromEnv checks that any PORT and HELLO_WARMUP either give a usable
// configuration or an error, never a panic or an out-of-range value.
func FuzzConfigFromEnv(f *testing.F) {
	for _, s := range [][2]string{
		{"8080", ""}, {"", ""}, {"0", "1s"}, {"65535", "500ms"}, {"65536", ""}, {" 80 ", "-1s"},
		{"+80", "1h"}, {"0x50", "5"}, {"80", "9999999999999999999h"}, {"-0", "0"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, port, warmup string) {
		env := map[string]string{"PORT": port, "HELLO_WARMUP": warmup}
		c, err := configFromEnv(func(k string) string { return env[k] })
		if err != nil {
			return
		}
		if c.port < 1 || c.port > 65535 {
			t.Fatalf("PORT=%q gave port %d", port, c.port)
		}
		if c.warmup < 0 {
			t.Fatalf("HELLO_WARMUP=%q gave %v", warmup, c.warmup)
		}
	})
}
