package manifest_test

import (
	"fmt"

	"qnet.dev/qnet/manifest"
)

func ExampleDecode() {
	good := []byte(`apiVersion: qnet/v1
kind: Service
metadata: {name: web}
spec:
  depot: {exec: {command: ./bin/web}}
  resources: {cpu: 250m}
  ports: [{name: http, port: 8080}]
  health:
    liveness: {http: /healthz}
`)
	svcs, err := manifest.Decode("web.yaml", good)
	if err != nil {
		fmt.Println(err)
		return
	}
	s := svcs[0]
	live := s.Spec.Health.Liveness
	fmt.Println(s.Metadata.Name, s.Spec.Replicas, s.Spec.Resources.CPU, s.Spec.Resources.Memory)
	fmt.Println(live.HTTP.Path, live.HTTP.Port, live.Interval, live.Timeout)

	bad := []byte(`apiVersion: qnet/v1
kind: Service
metadata: {name: Web}
spec:
  depot: {exec: {command: ./bin/web}}
  replica: 3
  ports:
    - name: http
      port: 70000
`)
	_, err = manifest.Decode("web.yaml", bad)
	fmt.Println(err)
	// Output:
	// web 1 250m 64Mi
	// /healthz http 10s 1s
	// web.yaml:3:18: metadata.name: must be a DNS label (1-63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'), got "Web"
	// web.yaml:6:3: spec.replica: unknown field (did you mean replicas?); valid fields are depot, replicas, resources, ports, env, health, restart, placement, flows, ingress, secrets, configs and rollout
	// web.yaml:9:13: spec.ports[0].port: must be between 1 and 65535, got 70000
}

func ExampleParseRate() {
	r, err := manifest.ParseRate("90/m")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r, r.PerSecond(), r.DefaultBurst())
	_, err = manifest.ParseRate("90/min")
	fmt.Println(err)
	// Output:
	// 90/m 1.5 2
	// invalid rate "90/min": want N/s, N/m or N/h with N a whole number from 1 to 1000000000, like 200/s or 30/m
}

func ExampleService_ResolveFiles() {
	svcs, err := manifest.Decode("orders.yaml", []byte(`apiVersion: qnet/v1
kind: Service
metadata: {name: orders}
spec:
  depot: {exec: ./bin/orders}
  ports: [{name: http, port: 8080, expose: true}]
  flows: {allow: [db]}
  ingress: {rateLimit: 200/s, schema: ./order.schema.json}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	s := svcs[0]
	// qnet apply reads the schema file next to the manifest into the revision it signs.
	readFile := func(path string) ([]byte, error) {
		fmt.Println("read", path)
		return []byte(`{"type": "object", "required": ["id"]}`), nil
	}
	if err := s.ResolveFiles("deploy", readFile); err != nil {
		fmt.Println(err)
		return
	}
	in := s.Spec.Ingress
	fmt.Println(in.Port, in.RateLimit, in.Burst, in.MaxBodyBytes, string(in.SchemaJSON))
	fmt.Println(s.Spec.Flows.Allows("db"), s.Spec.Flows.Allows("cache"))
	// Output:
	// read deploy/order.schema.json
	// http 200/s 200 1Mi {"required":["id"],"type":"object"}
	// true false
}
