// Command echo is the sandbox node's test workload: a static HTTP server with
// no dependencies, packed as an OCI image by `roster-sandbox oci-image` and
// imported into the node without any registry. GET / answers
// "<name> <port> <address>" (the pod's name from $POD_NAME, else the
// hostname, and the local end of the connection), the format
// src/dev/consumer.ts reads; /healthz answers 200 for the kubelet's probes.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	flag.Parse()
	name := os.Getenv("POD_NAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		host, port := "", ""
		if local != nil {
			host, port, _ = net.SplitHostPort(local.String())
		}
		fmt.Fprintf(w, "%s %s %s\n", name, port, host)
	})
	if err := http.ListenAndServe(*listen, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
