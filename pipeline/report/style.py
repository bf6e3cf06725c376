"""The report's style sheet: one page on screen, A4 pages in print with page numbers in the margin.

Tables never run wider than the text column (long words and file names wrap); figures shrink to
the column. The print rules put the summary alone on page one and number every page through CSS
page-margin boxes (``@page { @bottom-right { content: counter(page) } }``), which headless
Chromium honours when it prints without its own header and footer.
"""

STYLE = """
:root{--red:#b00000;--amber:#8a4b00;--green:#1b6e20}
*{box-sizing:border-box}
body{font-family:"DejaVu Sans",system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;
margin:1.5em auto;max-width:72em;padding:0 1em;color:#111;line-height:1.35;font-size:15px}
header h1{font-size:1.5em;margin:0 0 .2em 0}
h2{font-size:1.2em;border-bottom:1px solid #bbb;padding-bottom:.15em;margin-top:1.6em}
h3{font-size:1.02em;margin:1.1em 0 .3em 0}
table{border-collapse:collapse;margin:.5em 0;font-size:.86em;max-width:100%}
table.wide{width:100%}
th,td{border:1px solid #c8c8c8;padding:.2em .45em;text-align:left;vertical-align:top;
overflow-wrap:break-word}
table.paths td{overflow-wrap:anywhere}
thead th{background:#eef0f3;font-size:.95em}
th.num{text-align:right}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.compact{font-size:.8em}
table.kv th{background:#f6f6f6;font-weight:600;width:16em}
caption{text-align:left;font-weight:600;padding:.25em 0}
figure{display:inline-block;margin:.4em .8em .4em 0;vertical-align:top;max-width:100%}
figure.full{display:block;margin:.6em 0}
img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.82em;color:#444}
nav{font-size:.85em;margin:.6em 0}nav a{margin-right:.9em;white-space:nowrap}
.meta{color:#444;margin:.1em 0}.na{color:var(--amber);font-style:italic}
.note{font-size:.85em;color:#333;margin:.3em 0}
.warn{color:var(--amber)}
.qcfail,.qcwarn,.over{color:var(--red);font-weight:bold}
.qcpass{color:var(--green);font-weight:bold}
.qcna{color:var(--amber);font-weight:bold}
.planning{font-size:1.08em;border-left:4px solid #456;padding:.3em .7em;background:#f3f6f9;margin:.7em 0}
.verdict{font-size:1.05em;margin:.5em 0}
.facts th{width:13em}
.signature table{width:100%}.signature td{height:2.6em}
.provenance-line{font-size:.8em;color:#444}
@media print{
  @page{size:A4;margin:14mm 12mm 16mm 12mm;
    @bottom-left{content:"spectdose dosimetry report";font:8pt "DejaVu Sans",sans-serif;color:#555}
    @bottom-right{content:"Page " counter(page) " of " counter(pages);font:8pt "DejaVu Sans",sans-serif;color:#555}}
  body{max-width:none;margin:0;padding:0;font-size:9.5pt}
  nav{display:none}
  section#summary{break-after:page}
  h2,h3,caption{break-after:avoid}
  tr,figure,img,.planning,.signature{break-inside:avoid}
  a{color:inherit;text-decoration:none}
  table{font-size:8.5pt}
  table.compact{font-size:7.5pt}
  header h1{font-size:15pt}
}
"""
