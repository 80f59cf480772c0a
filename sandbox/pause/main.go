// Command pause is the sandbox node's pod infrastructure container: it holds
// a pod's namespaces open and does nothing else. Built from source by
// `make node-images` (bin/roster-pause) and imported into the node's
// containerd as its sandbox_image, so no image is ever pulled from a registry.
//
// As PID 1 of a pod that shares its process namespace it also reaps the
// zombies of its children, as Kubernetes' own pause does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
