package health_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"

	"qnet.dev/qnet/health"
	"qnet.dev/qnet/manifest"
)

// A readiness probe of a depot whose port "http" was assigned host port 20001 (here,
// a test server's port), checked once.
func ExampleNewCheck() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	probe := &manifest.Probe{HTTP: &manifest.HTTPCheck{Path: "/ready", Port: "http"}}
	check, err := health.NewCheck(probe, health.Target{Ports: map[string]int{"http": port}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("ready:", check.Run(context.Background()) == nil)

	_, err = health.NewCheck(&manifest.Probe{TCP: &manifest.TCPCheck{Port: "grpc"}},
		health.Target{Ports: map[string]int{"http": port}})
	fmt.Println(err)
	// Output:
	// ready: true
	// health probe: tcp.port: port "grpc" is not a port of this depot; valid names: "http"
}
