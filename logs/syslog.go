package logs

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/api"
)

// syslogSink sends RFC 5424 messages over TCP (RFC 6587 octet counting)
// or UDP (RFC 5426, one message per datagram):
//
//	<PRI>1 TIME NODE STACK.SERVICE TASK STREAM [berth@32473 stack=.. service=.. task=.. revision=..] LINE
//
// stdout is facility user, severity info; stderr severity error.
type syslogSink struct {
	network, addr, host string
	conn                net.Conn
	buf                 []byte
}

// maxSyslogMessage keeps a message within rsyslog's default limit (8 KiB).
const maxSyslogMessage = 8000

func newSyslog(network, addr, node string) *syslogSink {
	return &syslogSink{network: network, addr: addr, host: syslogToken(node, 255)}
}

func (s *syslogSink) Name() string { return "syslog+" + s.network + "://" + s.addr }

func (s *syslogSink) Close() error {
	if s.conn != nil {
		err := s.conn.Close()
		s.conn = nil
		return err
	}
	return nil
}

func (s *syslogSink) Send(ctx context.Context, batch []api.LogLine) error {
	if s.conn == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, s.network, s.addr)
		if err != nil {
			return sinkErr(s.Name(), err)
		}
		s.conn = c
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.conn.SetWriteDeadline(dl)
	}
	if s.network == "udp" {
		for i := range batch {
			if _, err := s.conn.Write(s.format(s.buf[:0], &batch[i])); err != nil {
				s.Close()
				return sinkErr(s.Name(), err)
			}
		}
		return nil
	}
	s.buf = s.buf[:0]
	for i := range batch {
		msg := s.format(nil, &batch[i])
		s.buf = strconv.AppendInt(s.buf, int64(len(msg)), 10)
		s.buf = append(s.buf, ' ')
		s.buf = append(s.buf, msg...)
	}
	if _, err := s.conn.Write(s.buf); err != nil {
		// What part of the batch arrived is unknown: the retry sends it
		// all again on a new connection (at least once).
		s.Close()
		return sinkErr(s.Name(), err)
	}
	return nil
}

// format appends one RFC 5424 message.
func (s *syslogSink) format(b []byte, l *api.LogLine) []byte {
	pri := 1*8 + 6
	if l.Stream == api.StreamStderr {
		pri = 1*8 + 3
	}
	b = fmt.Appendf(b, "<%d>1 %s %s %s %s %s [berth@32473 stack=\"%s\" service=\"%s\" task=\"%s\" revision=\"%d\"] ",
		pri, l.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), s.host,
		syslogToken(l.Stack+"."+l.Service, 48), syslogToken(l.Task, 128), l.Stream,
		sdEscape(l.Stack), sdEscape(l.Service), sdEscape(l.Task), l.Revision)
	line := l.Line
	if room := maxSyslogMessage - len(b); len(line) > room {
		line = line[:max(room, 0)]
	}
	return append(b, line...)
}

// syslogToken makes a header field: printable ASCII without spaces, at
// most n characters, "-" when empty.
func syslogToken(v string, n int) string {
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v) && len(out) < n; i++ {
		if c := v[i]; c > 32 && c < 127 {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}

var sdReplacer = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`)

func sdEscape(v string) string { return sdReplacer.Replace(v) }
