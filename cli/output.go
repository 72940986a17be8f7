package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"qnet.dev/qnet/manifest"
)

// Output formats of -o/--output.
const (
	formatTable = "table"
	formatText  = "text"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// choiceValue is a flag whose value must be one of a fixed set; a bad value fails at
// parse time with the flag's name and the valid values.
type choiceValue struct {
	v       *string
	allowed []string
}

func (c *choiceValue) String() string { return *c.v }
func (c *choiceValue) Type() string   { return "string" }
func (c *choiceValue) Set(s string) error {
	if !slices.Contains(c.allowed, s) {
		return fmt.Errorf("want one of %s", strings.Join(c.allowed, ", "))
	}
	*c.v = s
	return nil
}

// choiceFlag defines a flag on fs whose value is one of allowed, default allowed[0], and
// completes to them.
func choiceFlag(cmd *cobra.Command, fs *pflag.FlagSet, p *string, name, short, usage string, allowed ...string) {
	*p = allowed[0]
	fs.VarP(&choiceValue{v: p, allowed: allowed}, name, short, usage+" ("+strings.Join(allowed, "|")+")")
	_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp))
}

// outputFlag defines -o/--output with the given formats, the first being the default.
func outputFlag(cmd *cobra.Command, p *string, formats ...string) {
	choiceFlag(cmd, cmd.Flags(), p, "output", "o", "output format", formats...)
}

// writeDoc writes v as indented JSON, or as YAML converted from that JSON, so both show
// the API's field names.
func writeDoc(w io.Writer, format string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	if format == formatYAML {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return fmt.Errorf("encode output as YAML: %w", err)
		}
		_, err = w.Write(data)
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// table aligns tab-separated columns as kubectl does, without the trailing spaces that
// tabwriter leaves when a row's last cells are empty.
type table struct {
	out io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

// newTable returns a table that writes to w when flushed.
func newTable(w io.Writer) *table {
	t := &table{out: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 8, 3, ' ', 0)
	return t
}

func (t *table) Write(p []byte) (int, error) { return t.tw.Write(p) }

// Flush writes the aligned rows.
func (t *table) Flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	out := make([]byte, 0, t.buf.Len())
	for line := range bytes.Lines(t.buf.Bytes()) {
		out = append(append(out, bytes.TrimRight(line, " \n")...), '\n')
	}
	t.buf.Reset()
	_, err := t.out.Write(out)
	return err
}

// age says how long ago t was, in kubectl's style: 45s, 5m12s, 3h, 2d4h, 12d. A zero
// time is "-".
func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0)
	s := int64(d / time.Second)
	m, h, days := s/60, s/3600, s/86400
	switch {
	case s < 120:
		return fmt.Sprintf("%ds", s)
	case m < 10:
		if s%60 == 0 {
			return fmt.Sprintf("%dm", m)
		}
		return fmt.Sprintf("%dm%ds", m, s%60)
	case h < 3:
		return fmt.Sprintf("%dm", m)
	case h < 8:
		if m%60 == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m%60)
	case h < 48:
		return fmt.Sprintf("%dh", h)
	case days < 8:
		if h%24 == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h%24)
	default:
		return fmt.Sprintf("%dd", days)
	}
}

// timestamp formats t for people, in local time, with its age.
func timestamp(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339) + " (" + age(t, now) + " ago)"
}

// cpu formats millicores as manifests write them: "2", "250m".
func cpu(m int64) string { return manifest.MilliCPU(m).String() }

// memory formats bytes in binary units with at most one decimal: "64Mi", "7.7Gi".
func memory(b int64) string {
	units := []struct {
		name string
		size int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}}
	for _, u := range units {
		if b >= u.size || -b >= u.size {
			if b%u.size == 0 {
				return strconv.FormatInt(b/u.size, 10) + u.name
			}
			return strconv.FormatFloat(float64(b)/float64(u.size), 'f', 1, 64) + u.name
		}
	}
	return strconv.FormatInt(b, 10)
}

// yesNo is a boolean column.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// orDash shows an empty cell as "-", so columns stay readable.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// addrs formats a depot's addresses: the one address, or name=addr pairs in name order.
func addrs(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	if len(m) == 1 {
		for _, a := range m {
			return a
		}
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, name+"="+m[name])
	}
	return strings.Join(parts, ",")
}

// urls are the http:// URLs of a depot's addresses, in port name order.
func urls(m map[string]string) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, "http://"+m[name])
	}
	return out
}

// oneLine keeps a cell on one line, so a multi-line reason cannot break a table.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n\t") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// serverURL is the https URL of an API listening on addr; a wildcard host is reached on
// the loopback address.
func serverURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "https://" + addr
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}
