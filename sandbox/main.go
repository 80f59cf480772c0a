// Command roster-sandbox runs a real, local Kubernetes control plane for
// Roster's tests and demo: embedded etcd and kube-apiserver in this process,
// kube-controller-manager in a child process (the same binary), all on
// 127.0.0.1; optionally the data plane (dataplane.go) and a node (node.go). It writes an admin kubeconfig into its directory, prints one
// "ready" line once /readyz answers, and stops everything on SIGTERM/SIGINT.
//
// Restarting it on the same directory keeps the data and the ports, so a test
// can stop the control plane and bring it back "on the same data".
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	kubeapiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kubeproxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	kubescheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

const defaultControllers = "garbage-collector-controller,namespace-controller"

// Service ranges live in the benchmark range (RFC 2544) and a ULA, so no
// consumer packet is ever addressed to a private range. Only the data
// plane's node namespace routes them (dataplane.go).
const (
	serviceCIDR4 = "198.19.0.0/16"
	serviceCIDR6 = "fd52:5354:ffff::/112"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// state is persisted in the sandbox directory so a restart reuses the ports.
type state struct {
	APIServerPort int `json:"apiServerPort"`
	EtcdPort      int `json:"etcdPort"`
	EtcdPeerPort  int `json:"etcdPeerPort"`
}

func main() {
	// The controller manager runs as a child process of this same binary:
	// its global flag, feature-gate and signal state must not mix with the
	// apiserver's.
	if len(os.Args) > 1 && os.Args[1] == "controller-manager" {
		cmd := kcm.NewControllerManagerCommand()
		cmd.SetArgs(os.Args[2:])
		if err := cmd.Execute(); err != nil {
			os.Exit(1)
		}
		return
	}
	// kube-proxy runs in the node namespace, the data plane in its own
	// process so that it outlives an API server restart.
	if len(os.Args) > 1 && os.Args[1] == "kube-proxy" {
		cmd := kubeproxy.NewProxyCommand()
		cmd.SetArgs(os.Args[2:])
		if err := cmd.Execute(); err != nil {
			os.Exit(1)
		}
		return
	}
	// With --node, kube-scheduler binds pods to the node (its own process:
	// its own flags and feature gates, like the controller manager).
	if len(os.Args) > 1 && os.Args[1] == "scheduler" {
		cmd := kubescheduler.NewSchedulerCommand()
		cmd.SetArgs(os.Args[2:])
		if err := cmd.Execute(); err != nil {
			os.Exit(1)
		}
		return
	}
	// The kubelet runs as a child of the node process (node.go): its own
	// flags, feature gates and signal handling, like the controller manager.
	if len(os.Args) > 1 && os.Args[1] == "kubelet" {
		cmd := kubelet.NewKubeletCommand(context.Background())
		cmd.SetArgs(os.Args[2:])
		if err := cmd.Execute(); err != nil {
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "node" {
		if err := runNode(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "roster-sandbox node: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "oci-image" {
		if err := runOCIImage(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "roster-sandbox oci-image: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "dataplane" {
		if err := runDataPlane(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "roster-sandbox dataplane: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "roster-sandbox: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	// Its own flag set: the global one also holds the flags that linked
	// libraries register on import (cAdvisor's -containerd, -docker_only, ...),
	// which would bury these in --help and mean nothing here.
	fs := flag.NewFlagSet("roster-sandbox", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: roster-sandbox [flags]\n\n"+
			"Runs etcd, kube-apiserver and kube-controller-manager on 127.0.0.1 for Roster's tests and demo\n"+
			"(and, with --data-plane, kube-proxy and CoreDNS in a node network namespace; with --node,\n"+
			"a kubelet and containerd there too). Subcommands: oci-image (pack files as an OCI image archive).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var (
		dir         = fs.String("dir", ".sandbox", "directory for certificates, etcd data, kubeconfig and logs")
		port        = fs.Int("port", 0, "kube-apiserver secure port (0: reuse the previous one on this dir, else a free port)")
		controllers = fs.String("controllers", defaultControllers, "kube-controller-manager controllers to run (comma-separated; \"\" runs none)")
		logFile     = fs.String("log-file", "", "write component logs here instead of stderr")
		withParent  = fs.Bool("exit-with-parent", false, "shut down when the parent process dies (for test harnesses)")
		dataPlane   = fs.Bool("data-plane", false, "also run the data plane: a node network namespace with kube-proxy (nftables) and CoreDNS (needs root, ip, nft)")
		node        = fs.Bool("node", false, "also run a node (implies --data-plane): containerd and a kubelet in the node namespace, pods on a CNI bridge (needs root, containerd, runc, containernetworking-plugins)")
		apiArgs     multiFlag
		nodeImages  multiFlag
		kcmArgs     multiFlag
	)
	fs.Var(&apiArgs, "apiserver-arg", "extra kube-apiserver flag, e.g. --apiserver-arg=--etcd-compaction-interval=10s (repeatable)")
	fs.Var(&kcmArgs, "controller-manager-arg", "extra kube-controller-manager flag (repeatable)")
	fs.Var(&nodeImages, "node-image", "with --node: an OCI or Docker image archive to import into the node's containerd before ready (repeatable)")
	_ = fs.Parse(os.Args[1:])
	if *node {
		*dataPlane = true
		if *controllers != "" {
			*controllers += "," + nodeControllers
		}
	}

	root, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		// klog writes to fd 2; redirect it so stdout carries only our lines.
		if err := unix.Dup2(int(f.Fd()), 2); err != nil {
			return err
		}
	}

	st, err := loadState(root, *port)
	if err != nil {
		return err
	}
	pki, err := ensurePKI(filepath.Join(root, "pki"))
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", st.APIServerPort)
	kubeconfig := filepath.Join(root, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, pki); err != nil {
		return err
	}

	started := time.Now()
	etcd, err := startEtcd(filepath.Join(root, "etcd"), st.EtcdPort, st.EtcdPeerPort)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer etcd.Close()

	// NewAPIServerCommand installs the process's SIGTERM/SIGINT handler: the
	// first signal starts a graceful shutdown, a second one exits at once.
	api := kubeapiserver.NewAPIServerCommand()
	api.SetArgs(append(apiServerArgs(st, pki, *node), apiArgs...))
	apiDone := make(chan error, 1)
	go func() { apiDone <- api.Execute() }()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *withParent {
		go watchParent()
	}

	if err := waitReady(ctx, server, pki, apiDone); err != nil {
		return err
	}

	var manager *exec.Cmd
	if *controllers != "" {
		manager, err = startControllerManager(kubeconfig, *controllers, kcmArgs)
		if err != nil {
			return fmt.Errorf("controller-manager: %w", err)
		}
	}

	var scheduler *exec.Cmd
	if *node {
		scheduler, err = startScheduler(kubeconfig)
		if err != nil {
			if manager != nil {
				_ = manager.Process.Kill()
			}
			return fmt.Errorf("scheduler: %w", err)
		}
	}

	var plane *exec.Cmd
	planeInfo := ""
	if *dataPlane {
		plane, planeInfo, err = startDataPlane(ctx, kubeconfig, root)
		if err != nil {
			if manager != nil {
				_ = manager.Process.Kill()
			}
			return fmt.Errorf("data plane: %w", err)
		}
	}
	var nodeProc *exec.Cmd
	nodeDone := make(chan struct{})
	nodeInfoPath := ""
	if *node {
		nodeProc, nodeInfoPath, err = startNode(ctx, root, kubeconfig, server, pki, planeInfo, nodeImages)
		if err != nil {
			_ = plane.Process.Signal(syscall.SIGTERM)
			waitOrKill(plane, 10*time.Second)
			if manager != nil {
				_ = manager.Process.Kill()
			}
			return fmt.Errorf("node: %w", err)
		}
		nodeInfoPath = " node=" + nodeInfoPath
		go func() {
			// Reap it as soon as it exits; a node that dies is reported, and
			// the next node start cleans up after it.
			err := nodeProc.Wait()
			close(nodeDone)
			if ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "roster-sandbox: node exited: %v\n", err)
			}
		}()
	}
	if planeInfo != "" {
		planeInfo = " dataplane=" + planeInfo
	}

	fmt.Printf("roster-sandbox ready in %.1fs: server=%s kubeconfig=%s%s%s\n", time.Since(started).Seconds(), server, kubeconfig, planeInfo, nodeInfoPath)

	select {
	case err = <-apiDone:
		if err == nil {
			err = errors.New("kube-apiserver stopped unexpectedly")
		}
	case <-ctx.Done():
		// The apiserver saw the same signal; give it a bounded time to drain.
		select {
		case <-apiDone:
		case <-time.After(5 * time.Second):
		}
		err = nil
	}
	// The node before the data plane: its pods use the node namespace.
	if nodeProc != nil {
		_ = nodeProc.Process.Signal(syscall.SIGTERM)
		select {
		case <-nodeDone:
		case <-time.After(40 * time.Second):
			_ = nodeProc.Process.Kill()
			<-nodeDone
		}
	}
	if plane != nil {
		_ = plane.Process.Signal(syscall.SIGTERM)
		waitOrKill(plane, 10*time.Second)
	}
	if manager != nil {
		_ = manager.Process.Signal(syscall.SIGTERM)
		waitOrKill(manager, 3*time.Second)
	}
	if scheduler != nil {
		_ = scheduler.Process.Signal(syscall.SIGTERM)
		waitOrKill(scheduler, 3*time.Second)
	}
	return err
}

// startScheduler runs kube-scheduler as a child: with a node, Deployments'
// and StatefulSets' pods get bound to it as in any cluster.
func startScheduler(kubeconfig string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "scheduler",
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		"--leader-elect=false",
		// Several sandboxes may run at once: do not serve a fixed port.
		"--secure-port=0",
	)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	dieWithParent(cmd)
	return cmd, cmd.Start()
}

// startDataPlane runs `roster-sandbox dataplane` as a child and waits for its
// ready line; it returns the path of its dataplane.json.
func startDataPlane(ctx context.Context, kubeconfig, root string) (*exec.Cmd, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self, "dataplane", "--kubeconfig="+kubeconfig, "--dir="+filepath.Join(root, "dataplane"))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	// SIGTERM, not SIGKILL, if the sandbox dies: the data plane then removes
	// its namespaces itself.
	dieWithParentSignal(cmd, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	lines := make(chan string)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if m := dataPlaneReady.FindStringSubmatch(s.Text()); m != nil {
				lines <- m[1]
			}
		}
		close(lines)
	}()
	select {
	case info, ok := <-lines:
		if ok {
			return cmd, info, nil
		}
		_ = cmd.Wait()
		return nil, "", errors.New("exited before ready (see the log)")
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return nil, "", errors.New("interrupted before ready")
	}
}

var dataPlaneReady = regexp.MustCompile(`^roster-dataplane ready in \S+: info=(\S+)`)

// nodeControllers are the controllers a node's workloads need on top of
// the default ones: service accounts and their CA bundle for pods' tokens,
// EndpointSlices of selector Services, the workload controllers Helm charts
// use, and node lifecycle (it lifts the kubelet's initial
// node.kubernetes.io/not-ready taint once the node is Ready, so the
// scheduler places pods there).
const nodeControllers = "serviceaccount-controller,root-ca-certificate-publisher-controller,endpointslice-controller,node-lifecycle-controller," +
	"replicaset-controller,deployment-controller,disruption-controller,statefulset-controller,daemonset-controller,job-controller"

// startNode runs `roster-sandbox node` in a mount namespace of its own and
// waits for its ready line; it returns the path of its node.json.
func startNode(ctx context.Context, root, kubeconfig, server string, pki pkiFiles, planeInfo string, images []string) (*exec.Cmd, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(root, "node")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	kubeletKC := filepath.Join(dir, "kubelet.kubeconfig")
	if err := writeKubeconfigFor(kubeletKC, server, pki.CACert, pki.NodeCert, pki.NodeKey, "system:node:"+nodeName); err != nil {
		return nil, "", err
	}
	args := []string{"node", "--dir=" + dir, "--kubeconfig=" + kubeconfig, "--kubelet-kubeconfig=" + kubeletKC,
		"--client-ca=" + pki.CACert, "--dataplane=" + planeInfo}
	for _, img := range images {
		args = append(args, "--image="+img)
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	// SIGTERM if the sandbox dies: the node then removes its pods itself.
	dieWithParentSignal(cmd, syscall.SIGTERM)
	cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	lines := make(chan string)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if m := nodeReady.FindStringSubmatch(s.Text()); m != nil {
				// Into the log too: how long the node itself took.
				fmt.Fprintln(os.Stderr, s.Text())
				lines <- m[1]
			}
		}
		close(lines)
	}()
	select {
	case info, ok := <-lines:
		if ok {
			return cmd, info, nil
		}
		_ = cmd.Wait()
		return nil, "", errors.New("exited before ready (see the log)")
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waitOrKill(cmd, 30*time.Second)
		return nil, "", errors.New("interrupted before ready")
	}
}

var nodeReady = regexp.MustCompile(`^roster-node ready in \S+: info=(\S+)`)

func loadState(root string, port int) (state, error) {
	path := filepath.Join(root, "state.json")
	var st state
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			return st, fmt.Errorf("%s: %w", path, err)
		}
	}
	if port != 0 {
		st.APIServerPort = port
	}
	// Every listener stays open until all three ports are chosen: a port
	// closed and asked for again can come back, and the API server then
	// found etcd on its own port ("bind: address already in use").
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	ports := []*int{&st.APIServerPort, &st.EtcdPort, &st.EtcdPeerPort}
	taken := func(port int) bool {
		for _, p := range ports {
			if *p == port {
				return true
			}
		}
		return false
	}
	for _, p := range ports {
		// A port given or kept from the last run is never handed out twice.
		for *p == 0 {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return st, err
			}
			held = append(held, l)
			if port := l.Addr().(*net.TCPAddr).Port; !taken(port) {
				*p = port
			}
		}
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	return st, os.WriteFile(path, b, 0o600)
}

func apiServerArgs(st state, pki pkiFiles, node bool) []string {
	server := fmt.Sprintf("https://127.0.0.1:%d", st.APIServerPort)
	// No kubelet and no token controller: pods need no service account token.
	access := []string{"--disable-admission-plugins=ServiceAccount", "--authorization-mode=RBAC"}
	if node {
		// A real kubelet: it may touch only its Node and its pods, pods get
		// service account tokens, and the API server calls the kubelet
		// (logs, exec, the summary API) as the admin.
		access = []string{
			"--authorization-mode=Node,RBAC",
			"--enable-admission-plugins=NodeRestriction",
			"--kubelet-client-certificate=" + pki.AdminCert,
			"--kubelet-client-key=" + pki.AdminKey,
			"--kubelet-preferred-address-types=InternalIP",
		}
	}
	return append(access, []string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", st.EtcdPort),
		fmt.Sprintf("--secure-port=%d", st.APIServerPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// Room for thousands of Services: Roster publishes one ClusterIP Service per service.
		// Dual stack, in the benchmark range (see dataplane.go).
		"--service-cluster-ip-range=" + serviceCIDR4 + "," + serviceCIDR6,
		"--allow-privileged=true",
		// The "kubernetes" Service cannot point at loopback; keep it endpoint-less.
		"--endpoint-reconciler-type=none",
		"--client-ca-file=" + pki.CACert,
		"--tls-cert-file=" + pki.ServingCert,
		"--tls-private-key-file=" + pki.ServingKey,
		"--service-account-issuer=" + server + "/",
		"--service-account-key-file=" + pki.SAKey,
		"--service-account-signing-key-file=" + pki.SAKey,
		"--cert-dir=" + filepath.Dir(pki.CACert),
		// Tests and benchmarks create thousands of objects quickly.
		"--max-requests-inflight=2000",
		"--max-mutating-requests-inflight=1000",
	}...)
}

func startControllerManager(kubeconfig, controllers string, extra []string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"controller-manager",
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--controllers=" + controllers,
		"--leader-elect=false",
		// Several sandboxes may run at once: do not serve a fixed port.
		"--secure-port=0",
	}, extra...)
	cmd := exec.Command(self, args...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	dieWithParent(cmd)
	return cmd, cmd.Start()
}

func waitOrKill(cmd *exec.Cmd, grace time.Duration) {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// waitReady polls /readyz until it answers ok, the apiserver exits, or the
// context ends.
func waitReady(ctx context.Context, server string, pki pkiFiles, apiDone <-chan error) error {
	cert, err := tls.LoadX509KeyPair(pki.AdminCert, pki.AdminKey)
	if err != nil {
		return err
	}
	pool, err := loadPool(pki.CACert)
	if err != nil {
		return err
	}
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}},
	}
	deadline := time.After(3 * time.Minute)
	for {
		resp, err := client.Get(server + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-apiDone:
			return fmt.Errorf("kube-apiserver exited before it was ready: %v", err)
		case <-ctx.Done():
			return errors.New("interrupted before ready")
		case <-deadline:
			return errors.New("kube-apiserver not ready after 3 minutes")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// watchParent turns the death of the parent (a test runner killed with
// SIGKILL, say) into our own SIGTERM, so no control plane is left behind.
func watchParent() {
	parent := os.Getppid()
	for range time.Tick(500 * time.Millisecond) {
		if os.Getppid() != parent {
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			return
		}
	}
}
