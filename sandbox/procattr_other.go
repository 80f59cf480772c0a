//go:build !linux

package main

import (
	"errors"
	"os/exec"
	"syscall"
)

func dieWithParent(*exec.Cmd) {}

func dieWithParentSignal(*exec.Cmd, syscall.Signal) {}

func runDataPlane([]string) error { return errors.New("the data plane needs Linux network namespaces") }
