package lab

import "syscall"

// sysProcAttr gives lab processes SIGKILL when the thread that started them
// dies, so a crashed test binary leaves no daemon behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
