// Command app is a WASI test module for the wasm driver's tests, built with
// GOOS=wasip1 GOARCH=wasm. Its first argument picks what it does.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: app MODE [ARG]")
		os.Exit(2)
	}
	arg := ""
	if len(os.Args) > 2 {
		arg = os.Args[2]
	}
	switch os.Args[1] {
	case "exit":
		n, _ := strconv.Atoi(arg)
		fmt.Println("exiting with", n)
		os.Exit(n)
	case "sleep":
		fmt.Println("ready")
		fmt.Fprintln(os.Stderr, "to stderr")
		for {
			time.Sleep(time.Hour)
		}
	case "spin":
		fmt.Println("ready")
		n := 0
		for {
			n++
		}
	case "trap":
		fmt.Println("about to trap")
		// Far past the end of linear memory: the load traps (Go checks nil, not bounds
		// of unsafe pointers).
		p := (*byte)(unsafe.Pointer(uintptr(0xfffffff0)))
		fmt.Println(*p)
	case "alloc":
		mib, _ := strconv.Atoi(arg)
		var keep [][]byte
		for i := 0; i < mib; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep), "MiB")
	case "print":
		n, _ := strconv.Atoi(arg)
		for i := 0; i < n; i++ {
			fmt.Printf("line %06d %s\n", i, strings.Repeat("x", 87)) // 100 bytes
		}
	case "env":
		env()
	case "files":
		files(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

// env prints what the module was given and counts its runs in /data/count.
func env() {
	for i, a := range os.Args {
		fmt.Printf("arg[%d]=%s\n", i, a)
	}
	for _, e := range os.Environ() {
		fmt.Println("env=" + e)
	}
	count := 0
	if data, err := os.ReadFile("/data/count"); err == nil {
		count, _ = strconv.Atoi(string(data))
	}
	count++
	if err := os.WriteFile("/data/count", []byte(strconv.Itoa(count)), 0o644); err != nil {
		fmt.Println("data error:", err)
		os.Exit(1)
	}
	fmt.Println("runs=" + strconv.Itoa(count))
	if err := os.WriteFile(filepath.Join("/data", "../escape"), []byte("x"), 0o644); err == nil {
		fmt.Println("escaped /data")
	}
	if _, err := os.ReadFile("/etc/passwd"); err == nil {
		fmt.Println("read /etc/passwd")
	}
	// A symlink out of /data would reach the host's files.
	if err := os.Symlink("../../../../../../../../../../etc", "/data/out"); err == nil {
		fmt.Println("made a symlink")
	} else {
		fmt.Println("symlink refused:", err)
	}
	if _, err := os.ReadFile("/data/out/passwd"); err == nil {
		fmt.Println("read /etc/passwd through a symlink")
	}
	t0 := time.Now()
	time.Sleep(20 * time.Millisecond)
	fmt.Println("slept_ms=" + strconv.FormatInt(time.Since(t0).Milliseconds(), 10))
	fmt.Println("year=" + strconv.Itoa(time.Now().Year()))
}

// files prints each file it is given and its directory's listing, and tries to change
// the file.
func files(paths []string) {
	for _, p := range paths {
		data, err := os.ReadFile(p)
		fmt.Printf("read %s: %q %v\n", p, data, err)
		entries, err := os.ReadDir(filepath.Dir(p))
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		fmt.Printf("list %s: %v %v\n", filepath.Dir(p), names, err)
		if err := os.WriteFile(p, []byte("changed"), 0o644); err != nil {
			fmt.Printf("write %s refused\n", p)
		} else {
			fmt.Printf("wrote %s\n", p)
		}
	}
}
