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
	// web.yaml:6:3: spec.replica: unknown field (did you mean replicas?); valid fields are depot, replicas, resources, ports, env, health, restart and placement
	// web.yaml:9:13: spec.ports[0].port: must be between 1 and 65535, got 70000
}
