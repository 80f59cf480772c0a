package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the child if the sandbox dies, even by
// SIGKILL, so a test run never leaves a controller manager behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
