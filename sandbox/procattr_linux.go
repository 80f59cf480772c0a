package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the child if the sandbox dies, even by
// SIGKILL, so a test run never leaves a controller manager behind.
func dieWithParent(cmd *exec.Cmd) { dieWithParentSignal(cmd, syscall.SIGKILL) }

func dieWithParentSignal(cmd *exec.Cmd, sig syscall.Signal) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: sig}
}
