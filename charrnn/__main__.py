"""`python -m charrnn` runs the same CLI as the `charrnn` command."""
from .cli import main

main()
