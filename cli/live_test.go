package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestLiveLine(t *testing.T) {
	// Not a terminal: a line per change, nothing redrawn.
	var buf bytes.Buffer
	l := newLiveLine(&buf)
	l.Show(1, 4, "one")
	l.Show(4, 4, "two")
	l.Done()
	if got := buf.String(); got != "one\ntwo\n" {
		t.Errorf("to a buffer: %q", got)
	}

	// A terminal of 30 columns: redrawn in place with a bar, cut to fit, one newline
	// at the end.
	buf.Reset()
	l = &liveLine{w: &buf, tty: true, width: 30}
	l.Show(1, 4, "service/web: 1/4 ready, rolling out")
	l.Show(4, 4, "done")
	l.Done()
	l.Done()
	want := "\r\x1b[K[#####---------------] servi…" + "\r\x1b[K[####################] done" + "\n"
	if got := buf.String(); got != want {
		t.Errorf("on a terminal:\n got %q\nwant %q", got, want)
	}
	for _, line := range strings.Split(buf.String(), "\r\x1b[K") {
		if n := len([]rune(strings.TrimSuffix(line, "\n"))); n > 29 {
			t.Errorf("a redraw of %d characters on a terminal of 30: %q", n, line)
		}
	}
}

func TestBar(t *testing.T) {
	for _, c := range []struct {
		done, total int
		want        string
	}{
		{0, 5, "[----------]"}, {5, 5, "[##########]"}, {2, 4, "[#####-----]"},
		{7, 5, "[##########]"}, {-1, 5, "[----------]"}, {3, 0, "[----------]"},
	} {
		if got := bar(c.done, c.total, 10); got != c.want {
			t.Errorf("bar(%d, %d) = %q, want %q", c.done, c.total, got, c.want)
		}
	}
}
