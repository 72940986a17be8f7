package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// liveLine shows progress that changes: on a terminal as one line redrawn in place,
// with a bar; anywhere else (a file, a pipe, a CI log) as a new line per change, so
// the record keeps every step.
type liveLine struct {
	w     io.Writer
	tty   bool
	width int // the terminal's columns
	shown bool
}

// newLiveLine returns a liveLine writing to w, redrawing in place when w is a terminal
// (and TERM is not "dumb").
func newLiveLine(w io.Writer) *liveLine {
	l := &liveLine{w: w}
	if f, ok := w.(*os.File); ok && os.Getenv("TERM") != "dumb" {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			l.tty, l.width = true, terminalWidth(f)
		}
	}
	return l
}

// Show shows the progress: done of total, and what the line says.
func (l *liveLine) Show(done, total int, line string) {
	if !l.tty {
		fmt.Fprintln(l.w, line)
		return
	}
	l.shown = true
	// Carriage return, erase the line, then the bar and as much of the line as fits:
	// a line longer than the terminal would wrap, and the next redraw would leave
	// its first part behind.
	fmt.Fprint(l.w, "\r\x1b[K"+fit(bar(done, total, 20)+" "+line, l.width-1))
}

// Done ends the redrawn line, so what follows starts on a line of its own.
func (l *liveLine) Done() {
	if l.tty && l.shown {
		fmt.Fprintln(l.w)
		l.shown = false
	}
}

// bar draws done of total as a bar of width cells.
func bar(done, total, width int) string {
	filled := 0
	if total > 0 {
		filled = min(width, max(0, done*width/total))
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat("-", width-filled) + "]"
}

// fit cuts s to at most width characters, ending with "…" when it cut.
func fit(s string, width int) string {
	if width < 1 || utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}
