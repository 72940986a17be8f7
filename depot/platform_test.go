package depot

import (
	"strings"
	"testing"
)

func TestParsePlatform(t *testing.T) {
	good := map[string]Platform{
		"linux/arm64":    {OS: "linux", Arch: "arm64"},
		"linux/arm/v7":   {OS: "linux", Arch: "arm", Variant: "v7"},
		"wasip1/wasm":    {OS: "wasip1", Arch: "wasm"},
		"linux/amd64/v3": {OS: "linux", Arch: "amd64", Variant: "v3"},
	}
	for in, want := range good {
		got, err := ParsePlatform(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParsePlatform(%q) = %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "linux", "linux/", "/arm64", "Linux/ARM64", "a/b/c/d", "linux/arm 64"} {
		if _, err := ParsePlatform(in); err == nil || !strings.Contains(err.Error(), "platform") {
			t.Errorf("ParsePlatform(%q) error = %v", in, err)
		}
	}
}

func TestPlatformMatches(t *testing.T) {
	arm64 := Platform{OS: "linux", Arch: "arm64"}
	tests := []struct {
		want, img Platform
		ok        bool
	}{
		{arm64, arm64, true},
		{arm64, Platform{OS: "linux", Arch: "arm64", Variant: "v8"}, true},
		{Platform{OS: "linux", Arch: "arm", Variant: "v7"}, Platform{OS: "linux", Arch: "arm", Variant: "v6"}, false},
		{Platform{OS: "linux", Arch: "arm", Variant: "v7"}, Platform{OS: "linux", Arch: "arm"}, true},
		{arm64, Platform{OS: "linux", Arch: "amd64"}, false},
		{arm64, Platform{OS: "windows", Arch: "arm64"}, false},
	}
	for _, tt := range tests {
		if got := tt.want.Matches(tt.img); got != tt.ok {
			t.Errorf("%s.Matches(%s) = %v, want %v", tt.want, tt.img, got, tt.ok)
		}
	}
}
