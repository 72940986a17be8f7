package manifest

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestParseMilliCPU(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		want   MilliCPU
		format string // canonical form; "" when in is invalid
	}{
		{"250m", 250, "250m"},
		{"0.5", 500, "500m"},
		{"2", 2000, "2"},
		{"1.25", 1250, "1250m"},
		{"0.001", 1, "1m"},
		{"0.5000", 500, "500m"},
		{"1000m", 1000, "1"},
		{"0m", 0, "0"},
		{"-1", -1000, "-1"},
		{"1024", 1024000, "1024"},
		{"0.0001", 0, ""},
		{"1.5m", 0, ""},
		{"m", 0, ""},
		{"", 0, ""},
		{"2 cores", 0, ""},
		{"1e3", 0, ""},
		{".5", 0, ""},
		{"5.", 0, ""},
		{"99999999999999999999", 0, ""},
		{"99999999999999999999m", 0, ""},
	}
	for _, tt := range tests {
		got, err := ParseMilliCPU(tt.in)
		if tt.format == "" {
			if err == nil {
				t.Errorf("ParseMilliCPU(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseMilliCPU(%q) = %v, %v; want %d", tt.in, int64(got), err, tt.want)
		}
		if s := got.String(); s != tt.format {
			t.Errorf("MilliCPU(%d).String() = %q, want %q", tt.want, s, tt.format)
		}
	}
}

func TestParseBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		want   Bytes
		format string // canonical form; "" when in is invalid
	}{
		{"64Mi", 64 << 20, "64Mi"},
		{"1Gi", 1 << 30, "1Gi"},
		{"1.5Gi", 3 << 29, "1536Mi"},
		{"500M", 500_000_000, "500000000"},
		{"1K", 1000, "1000"},
		{"2Ki", 2048, "2Ki"},
		{"1536", 1536, "1536"},
		{"128974848", 128974848, "123Mi"},
		{"2T", 2_000_000_000_000, "1953125000Ki"},
		{"16Ti", 16 << 40, "16Ti"},
		{"0.5Ki", 512, "512"},
		{"1G", 1e9, "1000000000"},
		{"0", 0, "0"},
		{"-64Mi", -64 << 20, "-64Mi"},
		{"1.1", 0, ""},
		{"64MB", 0, ""},
		{"64mi", 0, ""},
		{"Mi", 0, ""},
		{"", 0, ""},
		{"1.2.3Mi", 0, ""},
		{"9000000Ti", 0, ""},
		{" 64Mi", 0, ""},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if tt.format == "" {
			if err == nil {
				t.Errorf("ParseBytes(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tt.in, int64(got), err, tt.want)
		}
		if s := got.String(); s != tt.format {
			t.Errorf("Bytes(%d).String() = %q, want %q", tt.want, s, tt.format)
		}
	}
}

// Every value formats to a string that parses back to it, so the JSON form is lossless.
func TestQuantityFormatRoundTrip(t *testing.T) {
	t.Parallel()
	values := []int64{0, 1, -1, 999, 1000, 1001, 1 << 10, 1 << 20, 3 << 29, 1 << 40, 1e9, 1e12,
		math.MaxInt64, math.MinInt64, math.MaxInt64 - 1023, math.MinInt64 + 1}
	for _, v := range values {
		if got, err := ParseMilliCPU(MilliCPU(v).String()); err != nil || got != MilliCPU(v) {
			t.Errorf("ParseMilliCPU(%q) = %d, %v; want %d", MilliCPU(v).String(), got, err, v)
		}
		if got, err := ParseBytes(Bytes(v).String()); err != nil || got != Bytes(v) {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", Bytes(v).String(), got, err, v)
		}
		if got, err := time.ParseDuration(Duration(v).String()); err != nil || got != time.Duration(v) {
			t.Errorf("ParseDuration(%q) = %d, %v; want %d", Duration(v).String(), got, err, v)
		}
	}
}

func TestQuantityJSON(t *testing.T) {
	t.Parallel()
	type q struct {
		CPU MilliCPU `json:"cpu"`
		Mem Bytes    `json:"mem"`
		D   Duration `json:"d"`
	}
	in := q{CPU: 250, Mem: 64 << 20, D: Duration(5 * time.Second)}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"cpu":"250m","mem":"64Mi","d":"5s"}`; string(data) != want {
		t.Errorf("json = %s, want %s", data, want)
	}
	var out q
	if err := json.Unmarshal(data, &out); err != nil || out != in {
		t.Errorf("Unmarshal = %+v, %v; want %+v", out, err, in)
	}
	for _, bad := range []string{`{"cpu":250}`, `{"cpu":"x"}`, `{"mem":64}`, `{"mem":"64MB"}`, `{"d":5}`, `{"d":"5"}`} {
		if err := json.Unmarshal([]byte(bad), &out); err == nil {
			t.Errorf("Unmarshal(%s) succeeded, want an error", bad)
		}
	}
}
