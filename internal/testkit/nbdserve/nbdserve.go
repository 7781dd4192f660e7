// Package nbdserve runs the real NBD servers of Debian's packages for tests:
// qemu-nbd (qemu-utils) over a qcow2 or raw image, and nbdkit with any plugin
// and filters, on a loopback TCP port or a Unix socket. A server can be
// killed (SIGKILL, a crash) and started again on the same address and image,
// as a DR volume server restarting. (Apart from nbdtest, which serves with
// aimwan's own NBD server and imports nbd, so that nbd's tests can use this.)
package nbdserve

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
)

// readyTimeout bounds the wait for a server to listen.
const readyTimeout = 30 * time.Second

// Server is one running NBD server.
type Server struct {
	URI    string // nbd://127.0.0.1:PORT/EXPORT or nbd+unix:///EXPORT?socket=PATH
	Addr   string // host:port (TCP), or ""
	Socket string // Unix socket path, or ""
	Proc   *testkit.Proc
	t      testing.TB
}

// QemuNBD serves image (format "qcow2" or "raw") as export name with
// qemu-nbd on a free loopback port: persistent (it keeps serving after a
// client disconnects), discards honoured, one client at a time (qemu-nbd's
// default, as docs/destination-node.md recommends for a DR volume).
func QemuNBD(t testing.TB, image, format, name string, extra ...string) *Server {
	t.Helper()
	bin := testkit.NeedTool(t, "qemu-nbd", "qemu-utils")
	addr := testkit.FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	args := append([]string{"--persistent", "--discard=unmap", "--format=" + format,
		"--bind=" + host, "--port=" + port, "--export-name=" + name}, extra...)
	s := &Server{URI: "nbd://" + addr + "/" + name, Addr: addr, t: t}
	s.Proc = testkit.StartProc(t, bin, "qemu-nbd", append(args, image)...)
	s.wait()
	return s
}

// QemuNBDUnix is QemuNBD on a Unix socket in the test's temp folder.
func QemuNBDUnix(t testing.TB, image, format, name string) *Server {
	t.Helper()
	bin := testkit.NeedTool(t, "qemu-nbd", "qemu-utils")
	sock := filepath.Join(shortDir(t), "q.sock")
	s := &Server{URI: "nbd+unix:///" + name + "?socket=" + sock, Socket: sock, t: t}
	s.Proc = testkit.StartProc(t, bin, "qemu-nbd", "--persistent", "--discard=unmap", "--format="+format,
		"--socket="+sock, "--export-name="+name, image)
	s.wait()
	return s
}

// Nbdkit runs `nbdkit PLUGIN-AND-ARGS...` in the foreground on a free
// loopback port (nbdkit serves its one export under any name; the URI names
// it "v"). Filters go first: Nbdkit(t, "--filter=error", "memory", "4M", ...).
func Nbdkit(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := testkit.NeedTool(t, "nbdkit", "nbdkit")
	addr := testkit.FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	s := &Server{URI: "nbd://" + addr + "/v", Addr: addr, t: t}
	s.Proc = testkit.StartProc(t, bin, "nbdkit", append([]string{"--foreground", "--ipaddr=" + host, "--port=" + port}, args...)...)
	s.wait()
	return s
}

// wait waits until the server accepts connections.
func (s *Server) wait() {
	s.t.Helper()
	if s.Addr != "" {
		testkit.WaitPort(s.t, readyTimeout, s.Addr, s.Proc)
		return
	}
	testkit.WaitFor(s.t, readyTimeout, "the NBD server's socket "+s.Socket, func() bool {
		c, err := net.Dial("unix", s.Socket)
		if err == nil {
			c.Close()
		}
		return err == nil || s.Proc.Exited()
	})
	if s.Proc.Exited() {
		s.t.Fatalf("%s exited before listening on %s:\n%s", s.Proc.Name, s.Socket, s.Proc.Tail(20))
	}
}

// Kill crashes the server (SIGKILL): connections break, nothing is flushed.
func (s *Server) Kill() { s.Proc.Kill() }

// Start starts the server again (same address, same image) and waits until
// it listens.
func (s *Server) Start() {
	s.t.Helper()
	if s.Socket != "" {
		os.Remove(s.Socket) // a killed qemu-nbd leaves its socket file
	}
	s.Proc.Restart()
	s.wait()
}

// Stop stops the server (SIGTERM: it flushes and exits).
func (s *Server) Stop() { s.Proc.Stop() }

// shortDir is a temp folder whose path fits a Unix socket address (108
// bytes), which t.TempDir() under a long TMPDIR may not.
func shortDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	if len(d) < 80 {
		return d
	}
	d, err := os.MkdirTemp("", "nbd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// QemuImg runs qemu-img with args and returns its output, failing the test
// on an error.
func QemuImg(t testing.TB, args ...string) string {
	t.Helper()
	bin := testkit.NeedTool(t, "qemu-img", "qemu-utils")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
