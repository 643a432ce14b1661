"""One module per verb: its flags (`add_arguments`) and `main(args)`. The library never imports from here."""
