package reports

import (
	"html/template"
	"io"
)

// htmlPage is the template data: the page plus each chart's inline SVG.
type htmlPage struct {
	*Page
	Charts []htmlChart
}

type htmlChart struct {
	Chart
	SVG template.HTML
}

// writeHTML writes a self-contained page: inline CSS and SVG, no scripts, no
// external resources, so it opens offline and can be mailed as one file.
func writeHTML(w io.Writer, p *Page) error {
	hp := htmlPage{Page: p}
	for i := range p.Charts {
		svg, err := renderSVG(&p.Charts[i])
		if err != nil {
			return err
		}
		// The SVG comes from vgsvg, which escapes all text it draws.
		hp.Charts = append(hp.Charts, htmlChart{Chart: p.Charts[i], SVG: template.HTML(svg)}) //nolint:gosec
	}
	return pageTemplate.Execute(w, hp)
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: "Liberation Sans", Arial, Helvetica, sans-serif; margin: 1.5em auto; max-width: 60em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; }
p.subtitle { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0.5em 0 1.5em; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 0.9em; }
nav a { margin-right: 1em; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{with .Subtitle}}<p class="subtitle">{{.}}</p>
{{end}}{{range .Notes}}<p>{{.}}</p>
{{end}}{{if .Charts}}<nav>{{range .Charts}}<a href="#{{.ID}}">{{.Title}}</a>{{end}}</nav>
{{end}}{{range .Tables}}<h2>{{.Title}}</h2>
<table>
<thead><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{end}}{{range .Charts}}<section class="chart" id="{{.ID}}">
<h2>{{.Title}}</h2>
<figure>
{{.SVG}}
{{with .Note}}<figcaption>{{.}}</figcaption>{{end}}
</figure>
</section>
{{end}}</body>
</html>
`))
