from svctrace.cli.main import run

run()
