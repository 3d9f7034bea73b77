"""The explain pipeline, below cli/: options in (plain data), a report out (plain data).

`explain` and `doctor` both call it; cli/ parses arguments and prints. Nothing here prints,
exits or imports typer; kubernetes and scapy are imported inside the functions that need them.

  report.py     ExplainOptions, ExplainReport, report_dict, exit_status
  pipeline.py   load_view, explain_service: the cluster half, then the node half
  node_side.py  where a node's rules come from, whose they are, and the node half
  probe.py      `--probe`: a real TCP SYN / UDP datagram to each backend the traces reached
"""
