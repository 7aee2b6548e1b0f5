package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
)

const (
	// filePoll is how long a follower at the end of a json-file log waits
	// before looking again; while data keeps coming it does not wait.
	filePoll = 100 * time.Millisecond
	// readChunk is the size of each read of a json-file log; the lines of
	// one read are appended to the store in one call.
	readChunk = 256 << 10
	// maxEntry bounds one json-file entry (the engine's are at most
	// 16 KiB of text, escaped up to six times); a longer one is dropped.
	maxEntry = 4 << 20
	// maxLine bounds a line joined from partial entries: longer output
	// without a newline is kept in pieces of this size.
	maxLine = 1 << 20
	// resumeSlack widens the choice of the first file to read on resume:
	// the engine stamps stdout and stderr in two readers, so times in a
	// file are not strictly in order.
	resumeSlack = time.Second
)

// jsonFile follows one container's json-file log as the engine writes
// and rotates it: the file at path is renamed path.1 (path.1 to path.2,
// and so on, the oldest removed) and a new file is created at path. The
// open descriptor is read to its end, which the engine wrote before the
// rename, then reading goes on with the next newer file.
type jsonFile struct {
	f    *follower
	path string
	stop <-chan struct{} // closed once the container is seen stopped

	file *os.File
	fi   os.FileInfo // of file, for telling whether path was rotated
	off  int64       // bytes of file read

	buf     []byte
	carry   int // bytes of an unfinished entry at the start of buf
	scratch []byte
	partial [2]partialLine // by stream: stdout, stderr
	bad     int            // entries that did not decode
}

// partialLine is a line the engine split into entries, not yet ended.
type partialLine struct {
	time time.Time
	text []byte
}

type logFile struct {
	name string
	fi   os.FileInfo
}

// openJSONFile opens the oldest file of the log that can hold lines at or
// after from (the zero time: the oldest file).
func openJSONFile(f *follower, path string, stop <-chan struct{}) (*jsonFile, error) {
	j := &jsonFile{f: f, path: path, stop: stop, buf: make([]byte, readChunk)}
	for attempt := 0; ; attempt++ {
		files, err := logFiles(path)
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("open %s: %w", path, os.ErrNotExist)
		}
		pick := 0
		if !f.from.IsZero() {
			for k := len(files) - 1; k >= 0; k-- {
				if t, ok := firstTime(files[k].name); ok && t.Before(f.from.Add(-resumeSlack)) {
					pick = k
					break
				}
			}
		}
		if err := j.open(files[pick]); err == nil {
			return j, nil
		} else if attempt == 5 {
			return nil, err
		}
	}
}

// open makes lf the file read, if its name still refers to it.
func (j *jsonFile) open(lf logFile) error {
	fh, err := os.Open(lf.name)
	if err != nil {
		return err
	}
	fi, err := fh.Stat()
	if err != nil || !os.SameFile(fi, lf.fi) {
		fh.Close()
		return fmt.Errorf("open %s: rotated meanwhile", lf.name)
	}
	if j.file != nil {
		j.file.Close()
	}
	j.file, j.fi, j.off = fh, fi, 0
	if j.carry > 0 {
		j.f.c.log.Warn("container log file ended inside an entry", "container", j.f.short, "bytes", j.carry)
		j.carry = 0
	}
	return nil
}

// run reads until the container is stopped and its log read to the end
// (then it keeps lines still unfinished, as the API stream does), or ctx
// ends.
func (j *jsonFile) run(ctx context.Context) error {
	defer j.file.Close()
	defer j.finish()
	halted := false
	timer := time.NewTimer(filePoll)
	defer timer.Stop()
	for ctx.Err() == nil {
		n, err := j.read()
		if err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		moved, err := j.followRotation()
		if err != nil {
			return err
		}
		if moved {
			continue
		}
		if halted {
			return nil
		}
		timer.Reset(filePoll)
		select {
		case <-ctx.Done():
		case <-j.stop:
			// Read once more: the engine closes the log before it reports
			// the container stopped.
			halted = true
		case <-timer.C:
		}
	}
	return nil
}

// read reads one chunk and keeps the whole entries it ends; it returns
// the bytes read (0 at the end of the file).
func (j *jsonFile) read() (int, error) {
	if j.carry == len(j.buf) {
		if len(j.buf) >= maxEntry {
			j.f.c.log.Warn("skip an oversized entry of a container log", "container", j.f.short, "bytes", j.carry)
			j.carry = 0
		} else {
			j.buf = append(j.buf[:j.carry], make([]byte, len(j.buf))...)
		}
	}
	n, err := j.file.Read(j.buf[j.carry:])
	j.off += int64(n)
	if n == 0 {
		if err == io.EOF {
			err = nil
		}
		if err != nil {
			err = fmt.Errorf("read %s: %w", j.file.Name(), err)
		}
		return 0, err
	}
	data := j.buf[:j.carry+n]
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		j.carry += n
		return n, nil
	}
	j.entries(data[:end+1])
	j.carry = copy(j.buf, data[end+1:])
	j.f.commit()
	return n, nil
}

// entries keeps the lines of whole entries, one per "\n".
func (j *jsonFile) entries(data []byte) {
	var e jsonEntry
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		line := data[:i]
		data = data[i+1:]
		var err error
		if j.scratch, err = decodeJSONLine(line, &e, j.scratch); err != nil {
			if j.bad++; j.bad == 1 {
				j.f.c.log.Warn("skip an entry of a container log that does not decode", "container", j.f.short, "file", j.file.Name())
			}
			continue
		}
		j.entry(&e)
	}
}

// entry keeps the lines an entry ends; text after its last "\n" waits
// for the stream's next entry. A joined line carries the time of its
// first part, as the API stream prints it.
func (j *jsonFile) entry(e *jsonEntry) {
	k := 0
	if e.Stream == api.StreamStderr {
		k = 1
	}
	p := &j.partial[k]
	text := e.Log
	for {
		i := bytes.IndexByte(text, '\n')
		if i < 0 {
			break
		}
		if len(p.text) > 0 {
			p.text = append(p.text, text[:i]...)
			j.f.keep(e.Stream, p.time, trimCR(p.text))
			p.text = p.text[:0]
		} else {
			j.f.keep(e.Stream, e.Time, trimCR(text[:i]))
		}
		text = text[i+1:]
	}
	if len(text) == 0 {
		return
	}
	if len(p.text) == 0 {
		p.time = e.Time
	}
	p.text = append(p.text, text...)
	if len(p.text) >= maxLine {
		j.f.keep(e.Stream, p.time, p.text)
		p.text = p.text[:0]
	}
}

// finish keeps lines the container left without a newline.
func (j *jsonFile) finish() {
	for k := range j.partial {
		p := &j.partial[k]
		if len(p.text) > 0 {
			stream := api.StreamStdout
			if k == 1 {
				stream = api.StreamStderr
			}
			j.f.keep(stream, p.time, trimCR(p.text))
			p.text = nil
		}
	}
	j.f.commit()
}

func trimCR(b []byte) []byte { return bytes.TrimSuffix(b, []byte{'\r'}) }

// followRotation moves to the next newer file once the file being read
// was rotated away and is read to its end; it reports whether anything
// moved. A file truncated in place (one file kept) is read again from 0.
func (j *jsonFile) followRotation() (bool, error) {
	fi, err := os.Stat(j.path)
	if err == nil && os.SameFile(fi, j.fi) {
		if fi.Size() < j.off {
			j.f.c.log.Warn("container log truncated in place; lines may be lost", "container", j.f.short)
			if _, err := j.file.Seek(0, io.SeekStart); err != nil {
				return false, err
			}
			j.off, j.carry = 0, 0
			return true, nil
		}
		return false, nil
	}
	// Rotated, or removed with the container: whatever the engine wrote
	// to it came before the rename, so one more read finds its end.
	if n, err := j.read(); n > 0 || err != nil {
		return n > 0, err
	}
	for attempt := 0; attempt < 5; attempt++ {
		files, err := logFiles(j.path)
		if err != nil {
			return false, err
		}
		next := -1
		for k, lf := range files {
			if os.SameFile(lf.fi, j.fi) {
				next = k + 1
				break
			}
		}
		if next < 0 && len(files) > 0 {
			// The file read was removed by rotation before its successor
			// was opened: what came between is lost.
			j.f.c.log.Warn("container log rotated faster than it was read; lines lost", "container", j.f.short)
			next = 0
		}
		if next < 0 || next >= len(files) {
			return false, nil
		}
		if err := j.open(files[next]); err == nil {
			return true, nil
		}
	}
	return false, nil
}

// logFiles lists the files of the json-file log at path, oldest first
// (path.N … path.1, path), as two identical listings in a row: a
// listing taken while the engine renames the files is taken again.
func logFiles(path string) ([]logFile, error) {
	var prev []logFile
	for attempt := 0; ; attempt++ {
		cur, err := listLogFiles(path)
		if err != nil {
			return nil, err
		}
		if attempt > 0 && sameFiles(prev, cur) || attempt == 10 {
			return cur, nil
		}
		prev = cur
		time.Sleep(time.Millisecond)
	}
}

func listLogFiles(path string) ([]logFile, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list container log files: %w", err)
	}
	type numbered struct {
		n  int
		lf logFile
	}
	var out []numbered
	for _, e := range ents {
		name := e.Name()
		n := 0
		if name != base {
			rest, ok := strings.CutPrefix(name, base+".")
			if !ok {
				continue
			}
			if n, err = strconv.Atoi(rest); err != nil || n <= 0 {
				continue
			}
		}
		full := filepath.Join(dir, name)
		fi, err := os.Stat(full)
		if err != nil {
			continue
		}
		out = append(out, numbered{n, logFile{full, fi}})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].n > out[b].n })
	files := make([]logFile, len(out))
	for i, o := range out {
		files[i] = o.lf
	}
	return files, nil
}

func sameFiles(a, b []logFile) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].name || !os.SameFile(a[i].fi, b[i].fi) {
			return false
		}
	}
	return true
}

// firstTime reads the time of a log file's first entry.
func firstTime(name string) (time.Time, bool) {
	fh, err := os.Open(name)
	if err != nil {
		return time.Time{}, false
	}
	defer fh.Close()
	line, err := bufio.NewReaderSize(io.LimitReader(fh, maxEntry), 64<<10).ReadBytes('\n')
	if err != nil {
		return time.Time{}, false
	}
	var e jsonEntry
	if _, err := decodeJSONLine(line[:len(line)-1], &e, nil); err != nil {
		return time.Time{}, false
	}
	return e.Time, true
}
