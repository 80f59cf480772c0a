// Command roster-xds-client is a real grpc-go xDS client used by Roster's
// integration tests, the `make run` demo and the xDS benchmark. It dials
// xds:///<service>.<namespace> (the bootstrap file named by
// GRPC_XDS_BOOTSTRAP points at Roster's xDS server) and sends
// grpc.health.v1.Health/Check RPCs, recording which backend answered each.
//
// It reads commands on stdin, one per line, and answers each with one JSON
// line on stdout:
//
//	rpcs N [HEADER=VALUE]  send N RPCs one after another (optionally with a
//	                       metadata header, for ring hash); prints
//	                       {"counts":{"127.0.0.2:5000":N,...},"errors":{"Unavailable":N}}
//	quit                   exit
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and the xDS LB policies
)

type result struct {
	Counts map[string]int `json:"counts"`
	Errors map[string]int `json:"errors"`
}

func main() {
	target := flag.String("target", "", "xds:///<service>.<namespace>")
	service := flag.String("service", "roster.xds-client", "health service name sent in each Check (lets backends tell client RPCs from probes)")
	timeout := flag.Duration("timeout", 2*time.Second, "deadline of one RPC")
	flag.Parse()
	if *target == "" {
		fmt.Fprintln(os.Stderr, "usage: roster-xds-client -target xds:///<service>.<namespace>")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(*target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fields := strings.Fields(in.Text())
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "quit":
			return
		case "rpcs":
			n, err := strconv.Atoi(fields[1])
			if err != nil || n < 1 {
				fmt.Fprintln(os.Stderr, "rpcs needs a positive count")
				os.Exit(2)
			}
			ctx := context.Background()
			if len(fields) > 2 {
				k, v, _ := strings.Cut(fields[2], "=")
				ctx = metadata.AppendToOutgoingContext(ctx, k, v)
			}
			res := result{Counts: map[string]int{}, Errors: map[string]int{}}
			for i := 0; i < n; i++ {
				var p peer.Peer
				rctx, cancel := context.WithTimeout(ctx, *timeout)
				_, err := client.Check(rctx, &healthpb.HealthCheckRequest{Service: *service}, grpc.Peer(&p))
				cancel()
				if err != nil {
					res.Errors[status.Code(err).String()]++
					continue
				}
				res.Counts[p.Addr.String()]++
			}
			if err := out.Encode(res); err != nil {
				os.Exit(1)
			}
		default:
			fmt.Fprintln(os.Stderr, "unknown command:", fields[0])
			os.Exit(2)
		}
	}
}
