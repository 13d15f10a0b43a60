def main(): print("rt")
