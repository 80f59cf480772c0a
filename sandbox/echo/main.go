// Command echo is the sandbox node's test workload: a static HTTP server with
// no dependencies, packed as an OCI image by `roster-sandbox oci-image` and
// imported into the node without any registry. GET / answers
// "<name> <port> <address>" (the pod's name from $POD_NAME, else the
// hostname, and the local end of the connection), the format
// src/dev/consumer.ts reads; /healthz answers 200 for the kubelet's probes.
//
// With --get URL (repeatable; $VARS expanded) it is a client instead: it
// GETs each URL (https with the pod's service-account CA and token, as
// in-cluster clients do), prints "<url> <status> <body>" per line, and exits.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// fetch GETs each URL; https requests carry the service-account token and
// trust only its CA. Exit status 0 even for HTTP errors: the caller reads them.
func fetch(urls []string) int {
	pool := x509.NewCertPool()
	if ca, err := os.ReadFile(saDir + "/ca.crt"); err == nil {
		pool.AppendCertsFromPEM(ca)
	}
	token, _ := os.ReadFile(saDir + "/token")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	code := 0
	for _, u := range urls {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err == nil && strings.HasPrefix(u, "https://") && len(token) > 0 {
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		}
		var resp *http.Response
		if err == nil {
			resp, err = client.Do(req)
		}
		if err != nil {
			fmt.Printf("%s error %s\n", u, strings.ReplaceAll(err.Error(), "\n", " "))
			code = 1
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		fmt.Printf("%s %d %s\n", u, resp.StatusCode, strings.Join(strings.Fields(string(body)), " "))
	}
	return code
}

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	var gets []string
	flag.Func("get", "URL to fetch and print instead of serving (repeatable)", func(v string) error {
		gets = append(gets, os.ExpandEnv(v))
		return nil
	})
	flag.Parse()
	if len(gets) > 0 {
		os.Exit(fetch(gets))
	}
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
