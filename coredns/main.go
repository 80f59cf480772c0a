// Command roster-coredns is CoreDNS built with only the plugins Roster's
// data plane needs: the cluster's DNS (kubernetes), answered by the sandbox
// API server, with errors and query logging. No forward plugin: names outside
// cluster.local get SERVFAIL/REFUSED, so nothing is ever resolved upstream.
// Its own module because CoreDNS pins a newer client-go than the sandbox's
// k8s.io/kubernetes.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The documented external build: the directive order decides the plugin chain.
func init() {
	dnsserver.Directives = []string{"bind", "ready", "errors", "log", "kubernetes"}
}

func main() {
	coremain.Run()
}
