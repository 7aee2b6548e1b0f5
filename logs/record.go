package logs

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/berth-dev/berth/api"
)

// A segment is a sequence of records, each self-delimiting:
//
//	uvarint length of the rest
//	int64   time (Unix nanoseconds, little endian)
//	byte    stream (0 stdout, 1 stderr)
//	uvarint revision
//	string  service, task, container, line (each uvarint length + bytes)
//
// The stack is the segment's directory and is not repeated per record.

var errShort = errors.New("truncated record")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendRecord encodes l onto b.
func appendRecord(b []byte, l *api.LogLine) []byte {
	n := 8 + 1 + uvarintLen(uint64(l.Revision)) +
		strLen(l.Service) + strLen(l.Task) + strLen(l.Container) + strLen(l.Line)
	b = binary.AppendUvarint(b, uint64(n))
	b = binary.LittleEndian.AppendUint64(b, uint64(l.Time.UnixNano()))
	var stream byte
	if l.Stream == api.StreamStderr {
		stream = 1
	}
	b = append(b, stream)
	b = binary.AppendUvarint(b, uint64(l.Revision))
	b = appendString(b, l.Service)
	b = appendString(b, l.Task)
	b = appendString(b, l.Container)
	return appendString(b, l.Line)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func strLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

// recordTime reads only the time of the record at the start of b, and the
// record's total length. It lets scans skip records cheaply.
func recordTime(b []byte) (int64, int, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n || n < 9 {
		return 0, 0, errShort
	}
	return int64(binary.LittleEndian.Uint64(b[k:])), k + int(n), nil
}

// decodeRecord decodes the record at the start of b into l (stack not
// set) and returns its total length.
func decodeRecord(b []byte, l *api.LogLine) (int, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n || n < 9 {
		return 0, errShort
	}
	total := k + int(n)
	p := b[k:total]
	l.Time = time.Unix(0, int64(binary.LittleEndian.Uint64(p))).UTC()
	l.Stream = api.StreamStdout
	if p[8] == 1 {
		l.Stream = api.StreamStderr
	}
	p = p[9:]
	rev, k := binary.Uvarint(p)
	if k <= 0 {
		return 0, errShort
	}
	l.Revision = int(rev)
	p = p[k:]
	var err error
	for _, s := range []*string{&l.Service, &l.Task, &l.Container, &l.Line} {
		if *s, p, err = readString(p); err != nil {
			return 0, err
		}
	}
	return total, nil
}

func readString(p []byte) (string, []byte, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || uint64(len(p)-k) < n {
		return "", nil, errShort
	}
	return string(p[k : k+int(n)]), p[k+int(n):], nil
}
