"""What a request must be: the schemas and their ECMA-262 patterns, the validators (reference and
fast), the size table, the session header, and the contract cases with their one runner
(`cases`) and `jimeng-mock conform`."""
