"""The core's commands (``forensics train|evaluate|predict|benchmark``): thin modules that parse
arguments, build from the layers below and call them. No command imports another command."""
