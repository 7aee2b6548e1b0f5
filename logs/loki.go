package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/api"
)

// lokiSink posts batches to Loki's push API in its JSON form: one stream
// per (stack, service, revision, stream) with the node as a label too;
// the task is not a label (Loki wants few label values).
type lokiSink struct {
	url, tenant string
	user, pass  string
	node        string
	hc          *http.Client
}

func newLoki(u *url.URL, node string) (*lokiSink, error) {
	v := *u
	v.Scheme = strings.TrimPrefix(u.Scheme, "loki+")
	s := &lokiSink{node: node, hc: &http.Client{}}
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
		v.User = nil
	}
	q := v.Query()
	s.tenant = q.Get("tenant")
	q.Del("tenant")
	v.RawQuery = q.Encode()
	if v.Path == "" || v.Path == "/" {
		v.Path = "/loki/api/v1/push"
	}
	s.url = v.String()
	return s, nil
}

func (s *lokiSink) Name() string { return "loki+" + s.url }
func (s *lokiSink) Close() error { s.hc.CloseIdleConnections(); return nil }

type lokiStream struct {
	Stream map[string]string `json:"stream"`
	Values [][2]string       `json:"values"`
}

type lokiPush struct {
	Streams []*lokiStream `json:"streams"`
}

func (s *lokiSink) Send(ctx context.Context, batch []api.LogLine) error {
	var push lokiPush
	byKey := map[string]*lokiStream{}
	for i := range batch {
		l := &batch[i]
		key := l.Stack + "\x00" + l.Service + "\x00" + strconv.Itoa(l.Revision) + "\x00" + l.Stream
		st := byKey[key]
		if st == nil {
			st = &lokiStream{Stream: map[string]string{"stack": l.Stack, "service": l.Service,
				"revision": strconv.Itoa(l.Revision), "stream": l.Stream, "node": s.node}}
			byKey[key] = st
			push.Streams = append(push.Streams, st)
		}
		st.Values = append(st.Values, [2]string{strconv.FormatInt(l.Time.UnixNano(), 10), l.Line})
	}
	body, err := json.Marshal(push)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "berth")
	if s.tenant != "" {
		req.Header.Set("X-Scope-OrgID", s.tenant)
	}
	if s.user != "" {
		req.SetBasicAuth(s.user, s.pass)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return sinkErr(s.Name(), err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return sinkErr(s.Name(), fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg)))
	default:
		return sinkErr(s.Name(), fmt.Errorf("%w: %s: %s", ErrRejected, resp.Status, bytes.TrimSpace(msg)))
	}
}
