"""One module per verb (new-model is new_model.py): its flags (`add_arguments`) and `main(args)`; args.py holds the
grammar they share (config file, key=value overrides, model and sampling flags). The library never imports from here.
"""
