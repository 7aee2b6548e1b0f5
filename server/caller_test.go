package server

import (
	"net"
	"os/user"
	"path/filepath"
	"testing"
)

func TestCallerIsThePeersUser(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if got := connCaller(sc); got != me.Username {
		t.Fatalf("caller %q, want %q", got, me.Username)
	}
}
