package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/user"
	"strconv"
	"syscall"
)

// The caller of a request is who history and events name: on the unix
// socket, the connecting process's user (from the kernel's peer
// credentials, which the caller cannot forge).

type callerKey struct{}

// connContext records a connection's caller in its context.
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, callerKey{}, connCaller(c))
}

func connCaller(c net.Conn) string {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		if addr := c.RemoteAddr(); addr != nil {
			return addr.String()
		}
		return "unknown"
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return "unknown"
	}
	var cred *syscall.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return "unknown"
	}
	uid := strconv.FormatUint(uint64(cred.Uid), 10)
	if u, err := user.LookupId(uid); err == nil {
		return u.Username
	}
	return fmt.Sprintf("uid %s", uid)
}

// caller is who made the request.
func caller(r *http.Request) string {
	if v, ok := r.Context().Value(callerKey{}).(string); ok && v != "" {
		return v
	}
	return "unknown"
}
