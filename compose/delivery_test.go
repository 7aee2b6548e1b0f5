package compose

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func TestDeliveryErrors(t *testing.T) {
	t.Parallel()
	prod := "x-berth:\n  environment: production\n"
	cases := []errorCase{
		{desc: "production refuses an untagged image", doc: prod + "services:\n  web:\n    image: shop/web\n",
			want: []string{`compose.yaml:5:5: services.web.image: image "shop/web" has no tag, which means latest: x-berth.environment is production`}},
		{desc: "production refuses latest", doc: prod + "services:\n  web:\n    image: 127.0.0.1:5000/shop/web:latest\n",
			want: []string{`compose.yaml:5:5: services.web.image: image "127.0.0.1:5000/shop/web:latest": x-berth.environment is production, which never runs latest`}},
		{desc: "production set in an overlay", doc: "services:\n  web:\n    image: shop/web\n", override: prod,
			want: []string{`services.web.image: image "shop/web" has no tag`}},
		{desc: "follow without a registry", doc: "services:\n  web:\n    image: shop/web:1\n    x-berth:\n      update: {follow: true}\n",
			want: []string{`compose.yaml:5:16: services.web.x-berth.update.follow: service image "shop/web:1" names no registry`}},
		{desc: "follow a digest", doc: "services:\n  web:\n    image: 127.0.0.1:5000/web@sha256:" + sha + "\n    x-berth:\n      update: {follow: true}\n",
			want: []string{`services.web.x-berth.update.follow: service image "127.0.0.1:5000/web@sha256:` + sha + `" is pinned by digest`}},
		{desc: "bad approval", doc: "services:\n  web:\n    image: 127.0.0.1:5000/web:1\n    x-berth:\n      update: {follow: true, approval: maybe}\n",
			want: []string{`services.web.x-berth.update.approval: approval maybe: use auto`}},
		{desc: "bad interval", doc: "services:\n  web:\n    image: 127.0.0.1:5000/web:1\n    x-berth:\n      update: {follow: true, interval: 10ms}\n",
			want: []string{`services.web.x-berth.update.interval: interval 10ms: use a duration of at least 1s`}},
		{desc: "unknown update key", doc: "services:\n  web:\n    image: 127.0.0.1:5000/web:1\n    x-berth:\n      update: {folow: true}\n",
			want: []string{`unknown key "folow" (did you mean "follow"?)`}},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			msg := loadError(t, tc)
			t.Log(msg)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error\n  %s\ndoes not contain\n  %s", msg, w)
				}
			}
		})
	}
}

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestDeliveryAccepted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	doc := "x-berth:\n  environment: production\nservices:\n" +
		"  web:\n    image: 127.0.0.1:5000/shop/web:1.4\n    x-berth:\n      update: {follow: true, approval: required, interval: 30s}\n" +
		"  api:\n    image: shop/api@sha256:" + sha + "\n"
	st, err := Load(context.Background(), Options{Files: []string{writeFile(t, dir, "compose.yaml", doc)}})
	if err != nil {
		t.Fatal(err)
	}
	au := st.Services["web"].AutoUpdate
	if au == nil || !au.Follow || au.Approval != api.ApprovalRequired || au.Interval.D() != 30*time.Second {
		t.Fatalf("auto update %+v", au)
	}
	if st.Services["api"].AutoUpdate != nil {
		t.Fatalf("api follows nothing, got %+v", st.Services["api"].AutoUpdate)
	}
}
