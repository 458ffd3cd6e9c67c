"""amdsim dashboard (Panel): live runs, registry, results explorer, comparisons, system page;
and reports.

`viz.server.serve_dashboard` serves it (`amdsim dashboard`); `viz.report.write_report`
writes a run's Results page, `viz.compare_report.write_compare_report` a comparison's Compare
page, as one offline HTML file (`amdsim report`). Panel and Bokeh are
imported only here, never by the engine.
"""

__all__: list[str] = []
