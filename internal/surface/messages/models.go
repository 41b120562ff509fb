package messages

import (
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
)

// AppendModelList appends GET /v1/models in Anthropic's list format, which
// its SDKs expect when they send anthropic-version:
// {"data":[{"type":"model","id","display_name","created_at"}],"has_more":false,"first_id","last_id"}.
// The gateway knows no display names, so display_name is the id; a model
// without a creation time gets the Unix epoch.
func AppendModelList(dst []byte, models []api.Model) []byte {
	dst = append(dst, `{"data":[`...)
	for i, m := range models {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"type":"model","id":`...)
		dst = api.AppendString(dst, m.ID)
		dst = append(dst, `,"display_name":`...)
		dst = api.AppendString(dst, m.ID)
		dst = append(dst, `,"created_at":"`...)
		dst = time.Unix(max(m.Created, 0), 0).UTC().AppendFormat(dst, time.RFC3339)
		dst = append(dst, `"}`...)
	}
	dst = append(dst, `],"has_more":false,"first_id":`...)
	if len(models) == 0 {
		return append(dst, `null,"last_id":null}`...)
	}
	dst = api.AppendString(dst, models[0].ID)
	dst = append(dst, `,"last_id":`...)
	dst = api.AppendString(dst, models[len(models)-1].ID)
	return append(dst, '}')
}
