// Command web is a WASI HTTP server for the wasm driver's tests, built with
// GOOS=wasip1 GOARCH=wasm. It serves on the listener the driver preopens as file
// descriptor 4 (for $PORT).
//
// The listener comes in blocking mode. A Go module is single-threaded under WASI, so a
// blocking accept would stop every goroutine: it makes the socket non-blocking first,
// and Go's runtime then parks the accepting goroutine in poll_oneoff instead.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
)

func main() {
	if err := syscall.SetNonblock(4, true); err != nil {
		fmt.Fprintln(os.Stderr, "no socket on fd 4:", err)
		os.Exit(1)
	}
	ln, err := net.FileListener(os.NewFile(4, "http"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "no listener on fd 4:", err)
		os.Exit(1)
	}
	fmt.Println("serving on", ln.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from wasm, depot %s, path %s\n", os.Getenv("DEPOT"), r.URL.Path)
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Write(body)
	})
	mux.HandleFunc("POST /data/{name}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := os.WriteFile("/data/"+r.PathValue("name"), body, 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "stored")
	})
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}
